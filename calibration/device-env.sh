# Sourced by the calibration scripts that run on a machine with an NVIDIA GPU and a full `pip install torch`:
# where the tools and NVIDIA's libraries are, and where the results and Phantom's staged files go.
#   OUT     results folder (created; default /tmp/phantom-out)
#   LIB     Phantom's staged libraries and `phantom` ($PHANTOM_LIB, default .devcarry), as an absolute path
#   PY      the Python that has torch ($PYTHON, default python3)
#   SITE    that torch's site-packages folder; NVLIB its NVIDIA CUDA libraries (nvidia/cu13/lib)
#   NVCC    CUDA's compiler (on PATH, else /usr/local/cuda/bin/nvcc)
OUT=${OUT:-/tmp/phantom-out}
mkdir -p "$OUT"
if [ -d "${PHANTOM_LIB:-.devcarry}" ]; then
  LIB=$(cd "${PHANTOM_LIB:-.devcarry}" && pwd)
fi
PY=${PYTHON:-python3}
SITE=$($PY -c "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))")
NVLIB=$SITE/nvidia/cu13/lib
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
