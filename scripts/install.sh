#!/usr/bin/env bash
# Install event_lightning (editable, with the dev tools) next to the torch you have.
#
#   bash scripts/install.sh            # torch already installed, or torch==2.13.0 from your index
#   TORCH_SPEC="torch==2.15.0" bash scripts/install.sh
#
# Why a script and not a bare `pip install -e .`: spikingjelly and norse depend on torchvision
# (and spikingjelly on torchaudio). On a machine whose torch is a CPU build but whose package index
# only has CUDA builds of torchvision/torchaudio, pip (a) upgrades torch to a CUDA build to satisfy
# their pins, and (b) installs a torchvision that cannot load next to CPU torch -- and torchmetrics
# imports torchvision when it is installed, which takes Lightning down. This script pins torch to
# the installed version and then removes torchvision/torchaudio only if they fail to import.
# event_lightning itself never needs them (spikingjelly's neurons don't; spikingjelly.datasets does).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  "$PYTHON" -m pip install "${TORCH_SPEC:-torch==2.13.0}"
fi
torch_version=$("$PYTHON" -c "import torch; print(torch.__version__.split('+')[0])")
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==${torch_version}" >"$constraints"

"$PYTHON" -m pip install -c "$constraints" -e ".[dev]"

for package in torchvision torchaudio; do
  if "$PYTHON" -m pip show "$package" >/dev/null 2>&1 && ! "$PYTHON" -c "import $package" >/dev/null 2>&1; then
    echo "install.sh: $package is installed but cannot load next to torch ${torch_version}" \
      "(a build for another torch/CUDA); removing it so torchmetrics and Lightning import." >&2
    "$PYTHON" -m pip uninstall -y "$package"
  fi
done

"$PYTHON" -c "import pytorch_lightning, torchmetrics, spikingjelly.activation_based.neuron, tonic, event_lightning; print('event_lightning installed')"
# the console command (pyproject.toml [project.scripts]) lands in the interpreter's scripts folder
scripts_dir=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_path('scripts'))")
"$scripts_dir/event-lightning" --help >/dev/null
echo "event-lightning installed in $scripts_dir (event-lightning fit --config quickstart)"
