# The Flux backend against the golden vectors of tests/data/golden/, which an independent
# direct-loop NumPy implementation of Flux's semantics wrote
# (tests/support/make_golden.py); the PyTorch backend is checked against the same files by
# tests/contract/test_golden.py.
#
#     julia --project=julia -e 'using Pkg; Pkg.test()'
using Flux: Flux, Chain, CrossCor, MaxPool
using JSON3: JSON3
using NNlib: relu
using SDCNN: SDCNN, CNNWeights, InputError, cnn, load_batch, load_weights
using Test: @test, @testset, @test_throws

const REPO = normpath(joinpath(@__DIR__, "..", ".."))
# Paths relative to REPO, as the golden JSON files record them.
const GOLDEN = joinpath("tests", "data", "golden")
const CASES = ("gray8", "rgb10", "shapes32")

read_json(path) = JSON3.read(read(path, String))

"""The golden case's expected values, weights path and tensor paths (relative to REPO)."""
function golden_case(case)
    expected = read_json(joinpath(REPO, GOLDEN, case, "expected.json"))
    weights = joinpath(GOLDEN, case, "weights.safetensors")
    tensors = [joinpath(GOLDEN, case, "tensors", "$(id).npy") for id in expected.image_ids]
    return expected, weights, tensors
end

"""Rows of a JSON array of arrays as the columns of a matrix: `n_labels × N`."""
columns(rows) = reduce(hcat, [Float64.(collect(row)) for row in rows])

"""Same keys in the same order, same strings; numbers within `atol`."""
function same_document(actual, expected; atol)
    if expected isa AbstractDict
        collect(keys(actual)) == collect(keys(expected)) || return false
        return all(
            same_document(actual[key], expected[key]; atol)
            for key in keys(expected)
        )
    elseif expected isa AbstractVector
        length(actual) == length(expected) || return false
        return all(same_document(a, e; atol) for (a, e) in zip(actual, expected))
    elseif expected isa AbstractFloat
        return actual isa Real && abs(actual - expected) <= atol
    end
    return actual == expected
end

"""The golden model with `CrossCor` in place of `Conv`: the mistake the golden files catch."""
function cross_correlation_model(weights::CNNWeights)
    return Chain(
        CrossCor(weights.conv1_weight, weights.conv1_bias, relu; pad = 1),
        MaxPool((2, 2)),
        CrossCor(weights.conv2_weight, weights.conv2_bias, relu; pad = 1),
        MaxPool((2, 2)),
        Flux.flatten,
        Flux.Dense(weights.dense_weight, weights.dense_bias),
        Flux.softmax,
    )
end

"""Write the plan of a one-prompt shard into `folder`; the command line that runs it."""
function cli_args(folder, case, weights, output, labels, tensors)
    plan = joinpath(folder, "plan-$(length(readdir(folder))).json")
    prompts = [(prompt_id = case, output = output, tensors = tensors)]
    document = (
        schema = SDCNN.PLAN_SCHEMA,
        weights = weights,
        labels = labels,
        gpus = 0,
        prompts = prompts,
    )
    write(plan, JSON3.write(document))
    return ["--plan", plan]
end

"""The message of the [`InputError`](@ref) that `f()` throws, or `nothing` if it throws none."""
function input_error_message(f)
    try
        f()
    catch err
        err isa InputError && return err.message
        rethrow()
    end
    return nothing
end

"""The process's file creation mask (POSIX `umask(2)` sets it and returns the old one)."""
function current_umask()
    mask = ccall(:umask, Cuint, (Cuint,), 0o022)
    ccall(:umask, Cuint, (Cuint,), mask)
    return mask
end

@testset "SDCNN" begin
    @testset "golden probabilities: $case" for case in CASES
        expected, weights_path, tensors = golden_case(case)
        weights = load_weights(joinpath(REPO, weights_path))
        batch = load_batch([joinpath(REPO, tensor) for tensor in tensors])
        side, channels = expected.image_size, expected.in_channels
        @test size(batch) == (side, side, channels, length(tensors))
        model = cnn(weights)
        @test maximum(abs.(model(batch) .- columns(expected.probabilities))) <=
            expected.tolerance
        logits = model[1:(end - 1)](batch)
        @test maximum(abs.(logits .- columns(expected.logits))) <= 1.0e-4
    end

    @testset "the golden files tell mistakes apart: $case" for case in CASES
        expected, weights_path, tensors = golden_case(case)
        weights = load_weights(joinpath(REPO, weights_path))
        batch = load_batch([joinpath(REPO, tensor) for tensor in tensors])
        golden = columns(expected.probabilities)
        margin = 100 * expected.tolerance
        @test maximum(abs.(cross_correlation_model(weights)(batch) .- golden)) > margin
        transposed = permutedims(batch, (2, 1, 3, 4)) # H and W swapped: images read as HWCN
        @test maximum(abs.(cnn(weights)(transposed) .- golden)) > margin
    end

    @testset "prediction document: $case" for case in CASES
        golden = read_json(joinpath(REPO, GOLDEN, case, "prediction.json"))
        tensors = [String(image.tensor) for image in golden.images]
        weights = String(golden.weights.path)
        mktempdir() do folder
            output = joinpath(folder, "predictions", "$case.json")
            args = cli_args(folder, case, weights, output, String.(golden.labels), tensors)
            @test cd(() -> SDCNN.main(args), REPO) == 0
            document = read_json(output)
            @test document.backend == "flux"
            @test document.device == "cpu"
            @test same_document(document, golden; atol = 1.0e-5)
            @test endswith(read(output, String), "}\n")
        end
    end

    @testset "9 significant digits, as the PyTorch backend writes them" begin
        @test SDCNN.round_probability(0.1f0) == 0.100000001
        @test SDCNN.round_probability(0.123456789123) == 0.123456789
        @test SDCNN.round_probability(1.0f0) == 1.0
    end

    @testset "bad input: an error naming the file, exit status 1, no JSON" begin
        expected, weights_path, tensors = golden_case("gray8")
        not_weights = joinpath(REPO, GOLDEN, "gray8", "expected.json")
        @test_throws InputError load_weights(not_weights)
        @test_throws InputError load_weights(joinpath(REPO, GOLDEN, "missing.safetensors"))
        @test_throws InputError SDCNN.load_tensor(joinpath(REPO, weights_path))
        rgb = joinpath(REPO, GOLDEN, "rgb10", "tensors", "rgb10_000.npy")
        @test_throws InputError load_batch([joinpath(REPO, tensors[1]), rgb])
        mktempdir() do folder
            output = joinpath(folder, "gray8.json")
            labels = String.(expected.labels)
            cases = (
                cli_args(
                    folder,
                    "gray8",
                    weights_path,
                    output,
                    labels[1:2],
                    tensors,
                ), # too few
                cli_args(folder, "gray8", weights_path, output, reverse(labels), tensors),
                cli_args(folder, "gray8", weights_path, output, labels, [rgb]), # 3 channels
                cli_args(folder, "gray8", "missing.safetensors", output, labels, tensors),
                ["--plan", joinpath(folder, "missing-plan.json")],
                ["--bogus"],
                ["--plan"],
            )
            write(joinpath(folder, "not-a-plan.json"), "[1, 2]")
            for args in (cases..., ["--plan", joinpath(folder, "not-a-plan.json")])
                status = redirect_stderr(devnull) do
                    cd(() -> SDCNN.main(args), REPO)
                end
                @test status == 1
                @test !isfile(output)
            end
        end
    end

    @testset "compatibility errors start with the config key to change" begin
        # the same messages as the PyTorch backend's (sdcnn/classify/weights.py, check_compatible)
        expected, weights_path, _ = golden_case("gray8")
        weights = load_weights(joinpath(REPO, weights_path))
        labels = String.(expected.labels)
        side = expected.image_size
        message(labels, imgsize) = input_error_message(
            () -> SDCNN.check_compatible(weights, weights_path, labels, imgsize),
        )
        @test isnothing(message(labels, (side, side, 1)))
        @test startswith(
            message(labels[1:2], (side, side, 1)),
            "classifier.labels: 2 labels, but weights file $weights_path has ",
        )
        @test startswith(
            message(reverse(labels), (side, side, 1)),
            "classifier.labels: $(reverse(labels)) do not match the labels recorded in ",
        )
        @test startswith(
            message(labels, (side, side, 3)),
            "preprocess.grayscale: the tensors have 3 channel(s), but weights file ",
        )
        @test startswith(
            message(labels, (2 * side, 2 * side, 1)),
            "preprocess.size: $(2 * side) gives $(32 * (side ÷ 2)^2) dense inputs, but ",
        )
        @test startswith(message(labels, (side + 4, side, 1)), "preprocess.size: ")
    end

    @testset "JSON written as the PyTorch backend writes files" begin
        @test occursin(r"^\.city\.json\.[0-9a-z]+\.tmp$", SDCNN.temporary_name("city.json"))
        mktempdir() do folder
            path = joinpath(folder, "city.json")
            SDCNN.write_json_atomic(path, (a = 1,))
            @test read(path, String) == "{\"a\":1}\n"
            # the mode a plain open() gives (0o644 under umask 022), not mktemp's 0o600
            @test filemode(path) & 0o777 == 0o666 & ~current_umask()
            @test readdir(folder) == ["city.json"]
            SDCNN.write_json_atomic(path, (a = 2,)) # replaces the file
            @test read(path, String) == "{\"a\":2}\n"
            # a failure after the temporary was created: it is removed, the file untouched
            @test_throws ErrorException SDCNN.write_json_atomic(path, (a = NaN,))
            @test read(path, String) == "{\"a\":2}\n"
            @test readdir(folder) == ["city.json"]
        end
    end

    @testset "predict.jl runs nothing when included" begin
        @test include("../predict.jl") === nothing
    end

    @testset "a GPU asked for where CUDA is not functional: gpu_fallback decides" begin
        @test SDCNN.select_device(0, "fail") == "cpu"
        @test input_error_message(() -> SDCNN.select_device(1, "gpu")) ==
            "gpu_fallback must be one of (\"fail\", \"cpu\"), not \"gpu\""
        if !SDCNN.CUDA.functional()
            # the case this testset is about (always on a CPU host)
            @test_throws SDCNN.DeviceError SDCNN.select_device(1)
            @test SDCNN.select_device(1, "cpu") == "cpu"
        end
    end
end
