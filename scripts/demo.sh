#!/usr/bin/env bash
# `make demo`: the TFX pipeline on SynthAffect through the tfx CLI, then the summary.
#
# Settings come from AFFECT_* variables (see affect_tf/pipeline/config.py); the output root
# defaults to runs/demo. The tfx CLI keeps its pipeline registry in $LOCAL_HOME, put under the
# output root so that the demo leaves $HOME alone.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN="$(pwd)/.venv/bin"
# `tfx pipeline create` runs `pip freeze`: the venv's pip must come first on PATH.
export PATH="$VENV_BIN:$PATH"
export AFFECT_OUTPUT_ROOT="${AFFECT_OUTPUT_ROOT:-runs/demo}"
mkdir -p "$AFFECT_OUTPUT_ROOT"
export AFFECT_OUTPUT_ROOT="$(cd "$AFFECT_OUTPUT_ROOT" && pwd)"
export LOCAL_HOME="${LOCAL_HOME:-$AFFECT_OUTPUT_ROOT/tfx_home}"
PIPELINE="$(pwd)/pipelines/affect.py"
NAME="${AFFECT_PIPELINE_NAME:-affect}"

start=$(date +%s)
if [ -d "$LOCAL_HOME/$NAME" ]; then
  echo "[demo] tfx pipeline update --pipeline_path=pipelines/affect.py --engine=local"
  tfx pipeline update --pipeline_path="$PIPELINE" --engine=local
else
  echo "[demo] tfx pipeline create --pipeline_path=pipelines/affect.py --engine=local"
  tfx pipeline create --pipeline_path="$PIPELINE" --engine=local
fi
echo "[demo] tfx run create --pipeline_name=$NAME --engine=local   (logs: $AFFECT_OUTPUT_ROOT/pipeline.log)"
status=0
tfx run create --pipeline_name="$NAME" --engine=local > "$AFFECT_OUTPUT_ROOT/pipeline.log" 2>&1 || status=$?
echo "[demo] pipeline finished in $(( $(date +%s) - start )) s (exit status $status)"
if [ "$status" -ne 0 ]; then
  # The summary still says which component failed; the log says why.
  grep -E "Error|error:" "$AFFECT_OUTPUT_ROOT/pipeline.log" | tail -5 || true
fi
affect-tf pipeline summary --out "$AFFECT_OUTPUT_ROOT" --require-blessed || { [ "$status" -ne 0 ] || status=1; }
exit "$status"
