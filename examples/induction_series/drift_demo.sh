#!/usr/bin/env bash
# Drift on genuine checkpoints: run the induction-series behaviours on every saved checkpoint,
# compare each with step 3500's snapshots, and write a report per checkpoint. Every report reads
# the earlier runs' summaries, so the last one (step 3500) plots each finding across the series.
#
#   examples/induction_series/drift_demo.sh [OUT_DIR] [STEP ...]
#
# OUT_DIR defaults to annotate-report/induction-series (git-ignored); STEPs default to every saved
# checkpoint. Open OUT_DIR/step3500.html; OUT_DIR/stepN.log holds each run's terminal output.
# Runs offline in ~3 minutes on 2 CPU cores. Needs the step-3500 snapshots under
# snapshots/checkpoints@step3500/ (committed; rewrite them with
#   pytest behaviours/induction_series --model examples/induction_series/checkpoints \
#          --checkpoint 3500 --threads 1 --snapshot-update).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
python="${PYTHON:-$root/.venv/bin/python}"
out="${1:-annotate-report/induction-series}"
shift $(( $# > 0 ? 1 : 0 ))
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(0 500 800 850 900 1000 1500 2000 2500 3000 3500)
baseline=checkpoints@step3500

mkdir -p "$out"
rm -f "$out"/step*.html "$out"/step*.md "$out"/step*.json "$out"/step*.log  # stale runs would join the trajectory
export HF_HUB_OFFLINE=1

for step in "${steps[@]}"; do
  compare=()
  [ "checkpoints@step$step" = "$baseline" ] || compare=(--snapshot-baseline "$baseline")
  echo "== step $step" >&2
  set +e
  # --threads 1: the snapshots were recorded with one thread (another count moves the last digits).
  "$python" -m pytest behaviours/induction_series -p no:cacheprovider -p pytest_annotate.plugin.report \
    --model examples/induction_series/checkpoints --checkpoint "$step" --threads 1 "${compare[@]}" \
    --annotate-report "$out/step$step.html" --annotate-report-history "$out" >"$out/step$step.log" 2>&1
  rc=$?
  set -e
  # 0: every finding holds; 1: some finding fails at this checkpoint, which is what the demo shows.
  if [ $rc -gt 1 ]; then
    echo "pytest failed to run on step $step (exit $rc); see $out/step$step.log" >&2
    tail -20 "$out/step$step.log" >&2
    exit $rc
  fi
  sed -n '/snapshot drift:/,/snapshots: /p' "$out/step$step.log"
  grep -E '[0-9]+ (passed|failed).* in [0-9.]+s' "$out/step$step.log" | tail -1 || true
  echo
done
echo "report with the trajectory across checkpoints: $out/step${steps[-1]}.html" >&2
