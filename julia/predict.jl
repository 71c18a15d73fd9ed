# The command line of the Flux backend. For one prompt's batch the workflow runs
#
#     julia --project=julia julia/predict.jl --prompt-id ID --weights W.safetensors \
#         --output P.json --label L1 --label L2 ... [--gpus N] -- T1.npy T2.npy ...
#
# which writes the `sdcnn-predictions/1` JSON of docs/equivalence.md (see SDCNN.main).
# Including this file, as julia/test/runtests.jl does, runs nothing.
using SDCNN: SDCNN

if abspath(PROGRAM_FILE) == @__FILE__
    # fatou-ignore discouraged-function: a command line reports its outcome as its exit status
    exit(SDCNN.main(ARGS))
end
