"""
    SDCNN

The sdcnn classifier in Flux.jl, numerically the same network as the PyTorch backend
(`sdcnn/classify/cnn.py`); both follow the contract in `docs/equivalence.md`:

    Conv((3,3), C=>16, relu; pad=1) -> MaxPool((2,2)) ->
    Conv((3,3), 16=>32, relu; pad=1) -> MaxPool((2,2)) ->
    flatten -> Dense(32*(S÷4)^2 => n_labels) -> softmax

`julia/predict.jl` is the command line the workflow calls; it runs [`main`](@ref).
"""
module SDCNN

using CUDA: CUDA
# fatou-ignore unused-import: loaded only to activate NNlib's CUDA+cuDNN extension (GPU convolutions)
using cuDNN: cuDNN
using Flux: Flux, Chain, Conv, Dense, MaxPool
using JSON3: JSON3
using NNlib: relu, softmax
using NPZ: NPZ
using Printf: @sprintf
using SafeTensors: SafeTensors
using SHA: sha256

export CNNWeights, InputError, cnn, load_weights, load_batch, predict, main

const SCHEMA = "sdcnn-predictions/1"
const WEIGHTS_FORMAT = "sdcnn-cnn"
const METADATA_KEY = "sdcnn"
const CONV1_CHANNELS = 16
const CONV2_CHANNELS = 32
const KERNEL = 3
const TENSOR_NAMES = (
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "dense.weight",
    "dense.bias",
)

"""
    InputError(message)

A problem with the inputs (arguments, weights file, tensors) whose message is meant for the
user as it is: [`main`](@ref) prints it without a stack trace and returns 1.
"""
struct InputError <: Exception
    message::String
end

Base.showerror(io::IO, err::InputError) = print(io, err.message)

# ---- weights

"""
    CNNWeights

The classifier's parameters in Flux's layouts: kernels `(kw, kh, in, out)`, the Dense matrix
`(out, in)`; `labels` as recorded in the weights file's metadata, or `nothing`.
"""
struct CNNWeights
    conv1_weight::Array{Float32, 4}
    conv1_bias::Vector{Float32}
    conv2_weight::Array{Float32, 4}
    conv2_bias::Vector{Float32}
    dense_weight::Matrix{Float32}
    dense_bias::Vector{Float32}
    labels::Union{Nothing, Vector{String}}
end

in_channels(weights::CNNWeights) = size(weights.conv1_weight, 3)
n_labels(weights::CNNWeights) = size(weights.dense_weight, 1)
n_features(weights::CNNWeights) = size(weights.dense_weight, 2)

"""
    dense_inputs(imgsize)

Features entering the Dense layer for images of `imgsize = (width, height, channels)`:
32 channels after two 2×2 max-pools, each rounding down, as in Flux and PyTorch.
"""
dense_inputs(imgsize::NTuple{3, Int}) = CONV2_CHANNELS * (imgsize[1] ÷ 4) * (imgsize[2] ÷ 4)

"""
    flux_layout(array)

An array read with its C-order (NumPy) shape, as SafeTensors.jl and NPZ.jl return it, with
its axes reversed: a kernel `K[out, in, kh, kw]` becomes Flux's `W[kw, kh, in, out]`.
"""
function flux_layout(array::AbstractArray{<:Any, N}) where {N}
    return permutedims(array, ntuple(i -> N + 1 - i, N))
end

"""
    load_weights(path) -> CNNWeights

Read and check a weights file (`docs/equivalence.md`); every problem is an
[`InputError`](@ref) that names the file.
"""
function load_weights(path::AbstractString)
    isfile(path) || throw(InputError("weights file $path does not exist"))
    file = try
        SafeTensors.deserialize(path; mmap = false)
    catch err
        throw(InputError(
            "weights file $path is not a safetensors file: $(sprint(showerror, err))",
        ))
    end
    found = sort!(collect(keys(file)))
    if found != sort!(collect(TENSOR_NAMES))
        throw(InputError(
            "weights file $path: expected tensors $(sort!(collect(TENSOR_NAMES))), found $found",
        ))
    end
    tensors = Dict(name => file[name] for name in TENSOR_NAMES)
    check_tensors(tensors, path)
    # The Dense matrix is (out, in) in the file and in Flux: it is not permuted.
    return CNNWeights(
        flux_layout(collect(tensors["conv1.weight"])),
        collect(tensors["conv1.bias"]),
        flux_layout(collect(tensors["conv2.weight"])),
        collect(tensors["conv2.bias"]),
        collect(tensors["dense.weight"]),
        collect(tensors["dense.bias"]),
        labels_from_metadata(file.metadata, path),
    )
end

"""
    check_tensors(tensors, path)

Element types, finiteness and mutually consistent shapes, checked on the C-order shapes
the file records (the messages quote them as the PyTorch backend does).
"""
function check_tensors(tensors::AbstractDict, path::AbstractString)
    for name in TENSOR_NAMES
        tensor = tensors[name]
        if eltype(tensor) != Float32
            throw(InputError(
                "weights file $path: $name is $(eltype(tensor)), expected Float32",
            ))
        end
        if !all(isfinite, tensor)
            throw(InputError("weights file $path: $name has NaN or infinite values"))
        end
    end
    conv1, dense = tensors["conv1.weight"], tensors["dense.weight"]
    channels = ndims(conv1) == 4 ? size(conv1, 2) : -1
    labels, features = ndims(dense) == 2 ? size(dense) : (-1, -1)
    expected = Dict(
        "conv1.weight" => (CONV1_CHANNELS, channels, KERNEL, KERNEL),
        "conv1.bias" => (CONV1_CHANNELS,),
        "conv2.weight" => (CONV2_CHANNELS, CONV1_CHANNELS, KERNEL, KERNEL),
        "conv2.bias" => (CONV2_CHANNELS,),
        "dense.weight" => (labels, features),
        "dense.bias" => (labels,),
    )
    for name in TENSOR_NAMES
        shape = size(tensors[name])
        if shape != expected[name] || minimum(expected[name]) < 1
            throw(InputError(
                "weights file $path: $name has shape $shape, expected $(expected[name])",
            ))
        end
    end
    side = isqrt(features ÷ CONV2_CHANNELS)
    if CONV2_CHANNELS * side * side != features
        throw(InputError(
            "weights file $path: dense.weight has $features inputs, " *
                "not $CONV2_CHANNELS*k*k for a pooled image side k",
        ))
    end
    return nothing
end

"""
    labels_from_metadata(metadata, path)

The labels recorded under the `sdcnn` key of the file's `__metadata__`, or `nothing`.
"""
function labels_from_metadata(metadata, path::AbstractString)
    (isnothing(metadata) || !haskey(metadata, METADATA_KEY)) && return nothing
    description = try
        JSON3.read(metadata[METADATA_KEY])
    catch err
        throw(InputError(
            "weights file $path: metadata is not JSON: $(sprint(showerror, err))",
        ))
    end
    format = description isa AbstractDict ? get(description, :format, nothing) : nothing
    if format != WEIGHTS_FORMAT
        throw(InputError(
            "weights file $path: format $(repr(format)), not $(repr(WEIGHTS_FORMAT))",
        ))
    end
    labels = get(description, :labels, nothing)
    isnothing(labels) && return nothing
    if !(labels isa AbstractVector && all(label -> label isa AbstractString, labels))
        throw(InputError("weights file $path: metadata labels must be a list of strings"))
    end
    return String.(labels)
end

"""
    check_compatible(weights, path, labels, imgsize)

The weights fit the configured `labels` and the batch's `imgsize = (width, height,
channels)`: the Dense input size follows from the image size ([`dense_inputs`](@ref)).
Each message starts with the config key to change, as the PyTorch backend's
(`sdcnn/classify/weights.py`, `check_compatible`; the contract is in `docs/equivalence.md`).
"""
function check_compatible(
    weights::CNNWeights,
    path,
    labels::AbstractVector,
    imgsize::NTuple{3, Int},
)
    if n_labels(weights) != length(labels)
        throw(InputError(
            "classifier.labels: $(length(labels)) labels, but weights file $path " *
                "has $(n_labels(weights)) outputs",
        ))
    end
    if !isnothing(weights.labels) && weights.labels != labels
        throw(InputError(
            "classifier.labels: $labels do not match the labels recorded in " *
                "weights file $path: $(weights.labels)",
        ))
    end
    width, height, channels = imgsize
    if channels != in_channels(weights)
        throw(InputError(
            "preprocess.grayscale: the tensors have $channels channel(s), but weights " *
                "file $path expects $(in_channels(weights))",
        ))
    end
    if width != height || dense_inputs(imgsize) != n_features(weights)
        throw(InputError(
            "preprocess.size: $height gives $(dense_inputs(imgsize)) dense inputs, but " *
                "weights file $path has $(n_features(weights))",
        ))
    end
    return nothing
end

# ---- model

"""
    cnn(weights::CNNWeights)

The classifier as a Flux `Chain` ending in `softmax`. `Conv` is a true convolution, the
semantics the weights file's kernels are written for (`docs/equivalence.md`).
"""
function cnn(weights::CNNWeights)
    return Chain(
        Conv(weights.conv1_weight, weights.conv1_bias, relu; pad = 1),
        MaxPool((2, 2)),
        Conv(weights.conv2_weight, weights.conv2_bias, relu; pad = 1),
        MaxPool((2, 2)),
        Flux.flatten,
        Dense(weights.dense_weight, weights.dense_bias),
        softmax,
    )
end

# ---- tensors

"""
    load_tensor(path) -> Array{Float32,3}

One preprocessed tensor, checked as the PyTorch backend checks it: a float32 `.npy` of
shape `(C, S, S)` = (channels, height, width), finite, in [0, 1]. Returned as W×H×C.
"""
function load_tensor(path::AbstractString)
    isfile(path) || throw(InputError("$path: no such tensor file"))
    tensor = try
        NPZ.npzread(path)
    catch err
        throw(InputError("$path: not a readable .npy file: $(sprint(showerror, err))"))
    end
    tensor isa AbstractArray ||
        throw(InputError("$path: a scalar, expected (channels, size, size)"))
    eltype(tensor) == Float32 ||
        throw(InputError("$path: dtype $(eltype(tensor)), expected float32"))
    if ndims(tensor) != 3 || size(tensor, 2) != size(tensor, 3)
        throw(InputError("$path: shape $(size(tensor)), expected (channels, size, size)"))
    end
    all(isfinite, tensor) || throw(InputError("$path: contains NaN or infinite values"))
    if !isempty(tensor) && (minimum(tensor) < 0 || maximum(tensor) > 1)
        throw(InputError(
            "$path: values outside [0, 1] ($(minimum(tensor))..$(maximum(tensor)))",
        ))
    end
    return flux_layout(tensor)
end

"""
    load_batch(paths) -> Array{Float32,4}

A prompt's tensors as one W×H×C×N batch, in the order given; all must share a shape.
"""
function load_batch(paths::AbstractVector{<:AbstractString})
    isempty(paths) && throw(InputError("no tensors given"))
    images = map(load_tensor, paths)
    shapes = unique(map(image -> reverse(size(image)), images))
    length(shapes) == 1 ||
        throw(InputError("tensors of one batch differ in shape: $shapes"))
    return stack(images)
end

# ---- forward pass

"""
    DeviceError(message)

A job that asked for a GPU where CUDA is not functional, with `gpu_fallback` "fail" (the
default): `main` prints the message and returns 1, as for an [`InputError`](@ref).
"""
struct DeviceError <: Exception
    message::String
end

Base.showerror(io::IO, err::DeviceError) = print(io, err.message)

const GPU_FALLBACKS = ("fail", "cpu")

"""
    select_device(gpus, gpu_fallback = "fail") -> "cuda" or "cpu"

CUDA when a GPU was asked for (`gpus > 0`) and `CUDA.functional()`; the CPU when none was.
Asked for where CUDA is not functional: a [`DeviceError`](@ref) (`gpu_fallback` "fail"), or
the CPU with a warning (`"cpu"`); the config key `gpu_fallback`, as for the torch backend.
On CUDA the classifier then runs in true Float32 ([`exact_fp32_on_cuda`](@ref)).
"""
function select_device(gpus::Integer, gpu_fallback::AbstractString = "fail")
    if gpus <= 0
        @info "no GPU requested: running on the CPU"
        return "cpu"
    end
    gpu_fallback in GPU_FALLBACKS ||
        throw(InputError(
            "gpu_fallback must be one of $(GPU_FALLBACKS), not $(repr(gpu_fallback))",
        ))
    if CUDA.functional()
        @info "GPU requested and available: running on $(CUDA.device())"
        exact_fp32_on_cuda()
        return "cuda"
    end
    problem = "a GPU was requested but CUDA is not functional here"
    if gpu_fallback == "fail"
        throw(DeviceError(
            "$problem; stopping (gpu_fallback: fail). Run it where a GPU is, with a " *
                "functional CUDA.jl (README: GPUs), or set gpu_fallback: cpu to run on the CPU",
        ))
    end
    @warn "$problem: running on the CPU (gpu_fallback: cpu)"
    return "cpu"
end

"""
    exact_fp32_on_cuda()

True Float32 on the GPU, as the PyTorch backend's `sdcnn.core.device.exact_fp32_on_cuda`: TF32
would move the probabilities by ~1e-4, beyond the backends' 1e-5 contract.

- `CUDA.math_mode!(CUDA.PEDANTIC_MATH)`: cuBLAS (the Dense layer) gets
  `CUBLAS_PEDANTIC_MATH`, no tensor cores, and `*_PEDANTIC` compute types where CUDA.jl
  picks one (read in CUDA.jl 5.8: `lib/cublas/CUBLAS.jl` `math_mode!`,
  `lib/cublas/wrappers.jl`; 6.3: `lib/cublas/src/cuBLAS.jl`). The mode is set for this
  task and is the default of new ones (`lib/cudadrv/state.jl`; 6.x:
  `CUDACore/lib/cudadrv/state.jl`, whose public names `CUDA` forwards).
- cuDNN (the convolutions, through NNlib's CUDA extension, `ext/NNlibCUDACUDNNExt/conv.jl`)
  gets `cuDNN.math_mode()`, which maps `PEDANTIC_MATH` to `CUDNN_DEFAULT_MATH`
  (`lib/cudnn/src/cuDNN.jl`), and that still permits TF32 on A100 and later. Only the
  environment variable `NVIDIA_TF32_OVERRIDE=0` turns TF32 off there; the workflow sets
  it for every `julia` it starts (`sdcnn/classify/flux_backend.py`), and this warns when it is missing.
- Deterministic algorithms: cuDNN.jl has no switch. It picks the convolution algorithm
  by timing them once per process (`cudnnFindConvolutionForwardAlgorithmEx`, then
  `cudnnConvolutionAlgoPerfChoose`, `lib/cudnn/src/legacy/convolution.jl`), so the
  choice can differ between runs; each forward algorithm is itself deterministic
  (cuDNN's reproducibility notes), and any two differ in rounding only.
"""
function exact_fp32_on_cuda()
    CUDA.math_mode!(CUDA.PEDANTIC_MATH)
    if get(ENV, "NVIDIA_TF32_OVERRIDE", "") != "0"
        @warn "NVIDIA_TF32_OVERRIDE is not 0: cuDNN may run the Float32 convolutions in TF32"
    end
    return nothing
end

"""
    predict(model, batch, device) -> Matrix{Float32}

The model's output, `n_labels × N` softmax probabilities, for a W×H×C×N `batch`, computed
on the GPU when `device == "cuda"`.
"""
function predict(model, batch::AbstractArray{Float32, 4}, device::AbstractString)
    device == "cuda" || return model(batch)
    return Array(CUDA.cu(model)(CUDA.cu(batch)))
end

# ---- the prediction document

"""
    round_probability(p) -> Float64

`p` with 9 significant digits, exactly as the PyTorch backend's `float(f"{p:.9g}")`;
9 digits round-trip a Float32.
"""
round_probability(p::Real) = parse(Float64, @sprintf("%.9g", Float64(p)))

sha256_file(path::AbstractString) = bytes2hex(open(sha256, path))

image_id(tensor_path::AbstractString) = first(splitext(basename(tensor_path)))

"""
    prediction_document(; prompt_id, labels, tensor_paths, weights_path, probabilities, device)

The `sdcnn-predictions/1` document, keys in the order the PyTorch backend writes them;
paths are recorded as given. `probabilities` is `n_labels × N`.
"""
function prediction_document(;
    prompt_id::AbstractString,
    labels::AbstractVector{<:AbstractString},
    tensor_paths::AbstractVector{<:AbstractString},
    weights_path::AbstractString,
    probabilities::AbstractMatrix{<:Real},
    device::AbstractString,
    safety_flagged::AbstractVector = fill(nothing, length(tensor_paths)),
    label::Union{Nothing, AbstractString} = nothing,
    splits::Union{Nothing, AbstractVector} = nothing,
)
    if size(probabilities) != (length(labels), length(tensor_paths))
        error(
            "probabilities of size $(size(probabilities)) for $(length(tensor_paths)) images",
        )
    end
    label_keys = Tuple(Symbol.(labels))
    images = map(enumerate(tensor_paths)) do (index, tensor_path)
        column = probabilities[:, index]
        top = argmax(column)
        return (
            image_id = image_id(tensor_path),
            tensor = String(tensor_path),
            tensor_sha256 = sha256_file(tensor_path),
            safety_flagged = safety_flagged[index],
            label = isnothing(label) ? nothing : String(label),
            split = isnothing(label) || isnothing(splits) ? nothing : String(splits[index]),
            probabilities = NamedTuple{label_keys}(Tuple(round_probability.(column))),
            top_label = String(labels[top]),
            top_probability = round_probability(column[top]),
            correct = isnothing(label) ? nothing : labels[top] == label,
        )
    end
    return (
        schema = SCHEMA,
        prompt_id = String(prompt_id),
        backend = "flux",
        device = String(device),
        labels = String.(labels),
        weights = (path = String(weights_path), sha256 = sha256_file(weights_path)),
        images = images,
    )
end

"""
    write_json_atomic(path, document)

Write `document` as JSON (one line and a newline) to a temporary file next to `path`, then
rename it onto `path`, as the PyTorch backend writes (`sdcnn/core/fileio.py`): a failed run never
leaves a partial file under the final name, and the temporary is removed on any error. The
temporary is `.<name>.<random>.tmp` in the same folder, created with mode `0o666` less the
umask (`0o644` under umask 022), like any file the workflow writes.
"""
function write_json_atomic(path::AbstractString, document)
    folder, name = splitdir(abspath(path))
    mkpath(folder)
    temporary, io = create_temporary(folder, name)
    try
        JSON3.write(io, document)
        write(io, "\n")
        close(io)
        # A plain rename(2), atomically replacing `path`: `Base.Filesystem.rename` (Julia
        # 1.10-1.11 `base/file.jl`: `jl_fs_rename`, falling back to copying only when the
        # rename fails; public as `Base.rename` since 1.12). Not `mv(...; force = true)`,
        # which on 1.10-1.11 deletes `path` first (`checkfor_mv_cp_cptree`).
        Base.Filesystem.rename(temporary, path)
    catch
        close(io)
        rm(temporary; force = true)
        rethrow()
    end
    return path
end

const TEMPORARY_FLAGS = Base.Filesystem.JL_O_WRONLY |
    Base.Filesystem.JL_O_CREAT |
    Base.Filesystem.JL_O_EXCL

"""
    temporary_name(name) -> String

A fresh temporary name for the file `name`: `.<name>.<random>.tmp`, the convention of
`sdcnn/core/fileio.py` (`tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")`).
"""
temporary_name(name::AbstractString) = ".$name.$(string(rand(UInt64); base = 36)).tmp"

"""
    create_temporary(folder, name) -> (path, io)

Create a new, empty temporary file for `name` in `folder` (never an existing one: the
file is opened with `O_EXCL`), with mode `0o666` less the umask, as `open(2)` applies it.
`mktemp` is not used: it gives mode `0o600` and a `jl_` name (`base/file.jl`, `mkstemp`).
"""
function create_temporary(folder::AbstractString, name::AbstractString; tries::Int = 100)
    for _ in 1:tries
        temporary = joinpath(folder, temporary_name(name))
        try
            return temporary, Base.Filesystem.open(temporary, TEMPORARY_FLAGS, 0o666)
        catch err
            err isa Base.IOError && err.code == Base.UV_EEXIST || rethrow()
        end
    end
    error("no free temporary name for $name in $folder after $tries tries")
end

# ---- the command line

const PLAN_SCHEMA = "sdcnn-predict-plan/1"

"""
    PromptJob

One prompt's batch in a [`Plan`](@ref): its id (recorded in the JSON), where its prediction
JSON goes, its `.npy` tensors in image order, the model's safety-checker verdict on each
image (`nothing` where the pipeline had no checker), and, for a labelled prompt, its label
and each image's split: all copied into the JSON, which also says whether the top label is
the label.
"""
struct PromptJob
    prompt_id::String
    output::String
    tensors::Vector{String}
    safety_flagged::Vector{Union{Nothing, Bool}} # each image's safety-checker verdict
    label::Union{Nothing, String}                # the label its images are meant to show
    splits::Union{Nothing, Vector{String}}       # each image's "train" or "holdout"
end

"""
    Plan

What one run of `julia/predict.jl` is asked to do: every prompt's batch of one shard, with
one set of weights, so Julia starts, loads its packages and builds the model once a shard.
Read from the JSON file the workflow writes (`$PLAN_SCHEMA`, `sdcnn/classify/flux_backend.py`).
"""
Base.@kwdef struct Plan
    weights::String               # the .safetensors weights file
    labels::Vector{String}        # the classifier's labels, in order
    gpus::Int = 1                 # 0: stay on the CPU; ≥ 1: CUDA when functional
    gpu_fallback::String = "fail" # where CUDA is not functional: "fail" or "cpu"
    prompts::Vector{PromptJob}    # the batches, in order
end

const USAGE = "usage: julia --project=julia julia/predict.jl --plan PLAN.json"

"""
    parse_options(args) -> String

The plan file named on the command line; anything else is an [`InputError`](@ref).
"""
function parse_options(args::AbstractVector{<:AbstractString})
    if length(args) != 2 || args[1] != "--plan"
        throw(InputError("expected --plan PLAN.json, got $(repr(args))\n$USAGE"))
    end
    return String(args[2])
end

function plan_value(plan, key::Symbol, type::Type, path::AbstractString)
    value = get(plan, key, nothing)
    value isa type ||
        throw(InputError("plan $path: $key is $(repr(value)), expected $(type)"))
    return value
end

function plan_strings(plan, key::Symbol, path::AbstractString)
    values = plan_value(plan, key, AbstractVector, path)
    all(value -> value isa AbstractString, values) ||
        throw(InputError("plan $path: $key must be a list of strings"))
    return String.(values)
end

"""
    plan_verdicts(job, n, path) -> Vector{Union{Nothing, Bool}}

A prompt's safety-checker verdicts: `n` of `true`, `false` or `null` (all `null` if absent).
"""
function plan_verdicts(job, n::Integer, path::AbstractString)
    verdicts = get(job, :safety_flagged, nothing)
    isnothing(verdicts) && return fill(nothing, n)
    if !(verdicts isa AbstractVector) ||
            length(verdicts) != n ||
            !all(v -> isnothing(v) || v isa Bool, verdicts)
        throw(InputError("plan $path: safety_flagged must be $n of true, false or null"))
    end
    return collect(Union{Nothing, Bool}, verdicts)
end

"""
    read_plan(path) -> Plan

The plan file, checked key by key; a problem is an [`InputError`](@ref) naming the key.
"""
function read_plan(path::AbstractString)
    isfile(path) || throw(InputError("plan $path does not exist"))
    plan = try
        JSON3.read(read(path, String))
    catch err
        throw(InputError("plan $path is not JSON: $(sprint(showerror, err))"))
    end
    plan isa AbstractDict || throw(InputError("plan $path is not a JSON object"))
    schema = get(plan, :schema, nothing)
    schema == PLAN_SCHEMA ||
        throw(InputError("plan $path: schema $(repr(schema)), not $(repr(PLAN_SCHEMA))"))
    jobs = map(plan_value(plan, :prompts, AbstractVector, path)) do job
        job isa AbstractDict || throw(InputError("plan $path: a prompt is not an object"))
        tensors = plan_strings(job, :tensors, path)
        label = plan_value(job, :label, Union{Nothing, AbstractString}, path)
        splits = isnothing(get(job, :splits, nothing)) ?
            nothing :
            plan_strings(job, :splits, path)
        if !isnothing(splits) && length(splits) != length(tensors)
            throw(InputError(
                "plan $path: $(length(splits)) splits for $(length(tensors)) tensors",
            ))
        end
        return PromptJob(
            plan_value(job, :prompt_id, AbstractString, path),
            plan_value(job, :output, AbstractString, path),
            tensors,
            plan_verdicts(job, length(tensors), path),
            isnothing(label) ? nothing : String(label),
            splits,
        )
    end
    isempty(jobs) && throw(InputError("plan $path: no prompts"))
    labels = plan_strings(plan, :labels, path)
    isempty(labels) && throw(InputError("plan $path: no labels"))
    return Plan(;
        weights = plan_value(plan, :weights, AbstractString, path),
        labels = labels,
        gpus = plan_value(plan, :gpus, Integer, path),
        gpu_fallback = haskey(plan, :gpu_fallback) ?
            String(plan_value(plan, :gpu_fallback, AbstractString, path)) :
            "fail",
        prompts = collect(PromptJob, jobs),
    )
end

"""
    predict_plan(plan::Plan) -> Vector

The Flux backend end to end for one shard: read and check the weights once, then for each
prompt read and check its tensors, run the model, write its JSON (atomically). Returns the
documents written.
"""
function predict_plan(plan::Plan)
    weights = load_weights(plan.weights)
    device = select_device(plan.gpus, plan.gpu_fallback)
    model = cnn(weights)
    documents = map(plan.prompts) do job
        batch = load_batch(job.tensors)
        check_compatible(weights, plan.weights, plan.labels, size(batch)[1:3])
        document = prediction_document(;
            prompt_id = job.prompt_id,
            labels = plan.labels,
            tensor_paths = job.tensors,
            weights_path = plan.weights,
            probabilities = predict(model, batch, device),
            device = device,
            safety_flagged = job.safety_flagged,
            label = job.label,
            splits = job.splits,
        )
        write_json_atomic(job.output, document)
        @info "$(job.prompt_id): $(size(batch, 4)) images predicted with flux on $device"
        return document
    end
    return documents
end

"""
    main(args = ARGS) -> Int

The command line of `julia/predict.jl`: 0 on success; 1 with one `ERROR:` line on stderr
for an [`InputError`](@ref). Any other exception propagates, with its stack trace.
"""
function main(args::AbstractVector{<:AbstractString} = ARGS)
    try
        predict_plan(read_plan(parse_options(args)))
    catch err
        err isa Union{InputError, DeviceError} || rethrow()
        println(stderr, "ERROR: ", err.message)
        return 1
    end
    return 0
end

end # module SDCNN
