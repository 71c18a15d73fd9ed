"""
    SDCNN

The sdcnn classifier in Flux.jl, numerically the same network as the PyTorch backend
(`sdcnn/cnn.py`); both follow the contract in `docs/equivalence.md`:

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
"""
function check_compatible(
    weights::CNNWeights,
    path,
    labels::AbstractVector,
    imgsize::NTuple{3, Int},
)
    if n_labels(weights) != length(labels)
        throw(InputError(
            "classifier.labels has $(length(labels)) labels but weights file $path " *
                "has $(n_labels(weights)) outputs",
        ))
    end
    if !isnothing(weights.labels) && weights.labels != labels
        throw(InputError(
            "classifier.labels $labels do not match the labels recorded in weights file " *
                "$path: $(weights.labels)",
        ))
    end
    width, height, channels = imgsize
    if channels != in_channels(weights) ||
            dense_inputs(imgsize) != n_features(weights) ||
            width != height
        throw(InputError(
            "weights file $path expects $(in_channels(weights))-channel square images with " *
                "$(n_features(weights)) dense inputs; the tensors are $((channels, height, width)) " *
                "(check preprocess.size and preprocess.grayscale)",
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
    select_device(gpus) -> "cuda" or "cpu"

CUDA when a GPU was asked for (`gpus > 0`) and `CUDA.functional()`, else the CPU; logged.
"""
function select_device(gpus::Integer)
    if gpus <= 0
        @info "no GPU requested: running on the CPU"
        return "cpu"
    elseif CUDA.functional()
        @info "GPU requested and available: running on $(CUDA.device())"
        return "cuda"
    end
    @warn "a GPU was requested but CUDA is not functional here: running on the CPU"
    return "cpu"
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
            probabilities = NamedTuple{label_keys}(Tuple(round_probability.(column))),
            top_label = String(labels[top]),
            top_probability = round_probability(column[top]),
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
rename it onto `path`: a failed run never leaves a partial file under the final name.
"""
function write_json_atomic(path::AbstractString, document)
    folder = dirname(abspath(path))
    mkpath(folder)
    temporary, io = mktemp(folder)
    try
        JSON3.write(io, document)
        write(io, '\n')
        close(io)
        mv(temporary, path; force = true)
    catch
        close(io)
        rm(temporary; force = true)
        rethrow()
    end
    return path
end

# ---- the command line

const PLAN_SCHEMA = "sdcnn-predict-plan/1"

"""
    PromptJob

One prompt's batch in a [`Plan`](@ref): its id (recorded in the JSON), where its prediction
JSON goes, and its `.npy` tensors in image order.
"""
struct PromptJob
    prompt_id::String
    output::String
    tensors::Vector{String}
end

"""
    Plan

What one run of `julia/predict.jl` is asked to do: every prompt's batch of one shard, with
one set of weights, so Julia starts, loads its packages and builds the model once a shard.
Read from the JSON file the workflow writes (`$PLAN_SCHEMA`, `sdcnn/julia.py`).
"""
Base.@kwdef struct Plan
    weights::String            # the .safetensors weights file
    labels::Vector{String}     # the classifier's labels, in order
    gpus::Int = 1              # 0: stay on the CPU; ≥ 1: CUDA when functional
    prompts::Vector{PromptJob} # the batches, in order
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
        return PromptJob(
            plan_value(job, :prompt_id, AbstractString, path),
            plan_value(job, :output, AbstractString, path),
            plan_strings(job, :tensors, path),
        )
    end
    isempty(jobs) && throw(InputError("plan $path: no prompts"))
    labels = plan_strings(plan, :labels, path)
    isempty(labels) && throw(InputError("plan $path: no labels"))
    return Plan(;
        weights = plan_value(plan, :weights, AbstractString, path),
        labels = labels,
        gpus = plan_value(plan, :gpus, Integer, path),
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
    device = select_device(plan.gpus)
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
        err isa InputError || rethrow()
        println(stderr, "ERROR: ", err.message)
        return 1
    end
    return 0
end

end # module SDCNN
