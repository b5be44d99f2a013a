# vLLM with the model weights inside the image, for the dstack and
# Kubernetes deployments: a CVM has no host directory to read weights from,
# and weights that come with the image are pinned by its digest (in the
# compose hash / the pod spec), so the consumer's policy covers them too.
#
#   # model/ holds the weights (e.g. a Hugging Face snapshot at a pinned revision)
#   docker build -f deploy/docker/vllm-model.Dockerfile \
#     --build-arg VLLM_IMAGE=vllm/vllm-openai@sha256:<digest you verified> \
#     -t cgw-vllm-model:<model>-<revision> <directory holding model/>
#
# VLLM_IMAGE has no default on purpose, as NODE_IMAGE in ./Dockerfile.
ARG VLLM_IMAGE
FROM ${VLLM_IMAGE}
COPY model/ /opt/model/
# Offline: the weights are here; nothing is fetched from a model hub at run time.
ENV HF_HUB_OFFLINE=1
