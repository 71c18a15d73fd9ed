# The command line of the Flux backend. For one shard's prompts the workflow runs
#
#     julia --project=julia julia/predict.jl --plan PLAN.json
#
# where PLAN.json (`sdcnn-predict-plan/1`, written by sdcnn/classify/flux_backend.py) names the weights,
# the labels, the GPUs to ask for, and every prompt's tensors and output file; it writes
# each prompt's `sdcnn-predictions/1` JSON of docs/equivalence.md (see SDCNN.main).
# Including this file, as julia/test/runtests.jl does, runs nothing.
using SDCNN: SDCNN

if abspath(PROGRAM_FILE) == @__FILE__
    # fatou-ignore discouraged-function: a command line reports its outcome as its exit status
    exit(SDCNN.main(ARGS))
end
