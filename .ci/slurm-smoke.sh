#!/usr/bin/env bash
# CI: the smoke Table 1 (the `l1` study, target `table1`) through a real one-node SLURM cluster,
# checked against a local run.
#
#   .ci/slurm-smoke.sh [DATA_ROOT]          (default ../shared/data; run as root)
#
# 1. starts the cluster (.ci/slurm-cluster.sh) unless it is up;
# 2. runs `snakemake --cores 8 --profile slurm --profile .ci/slurm-profile` (the README's cluster
#    command plus the CI overlay: smoke scale, CPU training, partition debug) into a results
#    folder of its own, under `timeout -k 30`;
# 3. proves the jobs went through SLURM: every non-local job of the DAG has a sacct record
#    (COMPLETED, by rule) and a per-job log under .snakemake/slurm_logs/, and every training job
#    and the latency job (which times on the job's GPU) was allocated gres/gpu=1 while no other
#    job was;
# 4. compares tables/l1.csv with a local run of the same config: results/ when it is up to date
#    and was trained on CPU with this DATA_ROOT, else a local run of its own, kept under $OUT for
#    as long as the code (src/, workflow/, Snakefile, config.yaml) is unchanged;
# 5. stops the cluster (trap), unless SLURM_SMOKE_KEEP_CLUSTER=1.
#
# Environment: SLURM_SMOKE_OUT (default /tmp/prunebench-slurm-smoke: results, logs, local run),
# SLURM_SMOKE_TIMEOUT (seconds for the SLURM run, default 2400), PRUNEBENCH_SLURM_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DATA_ROOT=${1:-../shared/data}
OUT=${SLURM_SMOKE_OUT:-/tmp/prunebench-slurm-smoke}
BASE=${PRUNEBENCH_SLURM_BASE:-/tmp/prunebench-slurm}
LIMIT=${SLURM_SMOKE_TIMEOUT:-2400}
export PATH=$REPO/.venv/bin:$PATH
export PRUNEBENCH_SLURM_BASE=$BASE

say() { echo "slurm-smoke: $*"; }
die() { echo "slurm-smoke: FAILED: $*" >&2; exit 1; }

t_all=$(date +%s)
cleanup() {
  local rc=$?
  if [ "${SLURM_SMOKE_KEEP_CLUSTER:-0}" != 1 ]; then .ci/slurm-cluster.sh stop "$BASE" || true; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- 1. cluster
mkdir -p "$OUT"
.ci/slurm-cluster.sh start "$BASE" | tee "$OUT/cluster-start.log"
startup=$(sed -n 's/.*start-up time \([0-9.]*\) s.*/\1/p' "$OUT/cluster-start.log")
startup=${startup:+$startup s}
startup=${startup:-"- (was already up)"}

# ---------------------------------------------------------------- 2. the SLURM run
rm -rf "$OUT/slurm"
mkdir -p "$OUT/slurm"
cat >"$OUT/slurm/run.yaml" <<EOF
# per-run keys of the SLURM smoke run (scale and device come from .ci/slurm-profile)
results: $OUT/slurm/results
data_root: $DATA_ROOT
download: false
EOF
SMK=(snakemake --cores 8 --profile slurm --profile .ci/slurm-profile --configfile "$OUT/slurm/run.yaml")

"${SMK[@]}" -n -- table1 >"$OUT/slurm/dryrun.log" 2>&1 || { cat "$OUT/slurm/dryrun.log"; die "dry run failed"; }
total=$(sed -n 's/^total *\([0-9]*\)$/\1/p' "$OUT/slurm/dryrun.log" | head -1)
say "the DAG has ${total:-?} jobs"

say "running the smoke Table 1 (target table1) through SLURM (limit ${LIMIT}s): ${SMK[*]}"
t_run=$(date +%s)
set +e
timeout -k 30 "$LIMIT" "${SMK[@]}" -- table1 >"$OUT/slurm/snakemake.log" 2>&1
rc=$?
set -e
run_s=$(( $(date +%s) - t_run ))
if [ $rc -ne 0 ]; then
  tail -40 "$OUT/slurm/snakemake.log" >&2
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    "${SMK[@]}" --unlock >/dev/null 2>&1 || true
    die "the SLURM run passed its ${LIMIT}s limit (log: $OUT/slurm/snakemake.log)"
  fi
  die "the SLURM run exited $rc (log: $OUT/slurm/snakemake.log)"
fi
say "SLURM run finished in ${run_s}s"

# ---------------------------------------------------------------- 3. did it go through SLURM?
run_id=$(sed -n 's/.*SLURM run ID: \([A-Za-z0-9_-]*\).*/\1/p' "$OUT/slurm/snakemake.log" | head -1)
[ -n "$run_id" ] || die "no 'SLURM run ID' in $OUT/slurm/snakemake.log: the slurm executor did not run"
# rule name -> jobs Snakemake sent to SLURM: its log says `rule X:` for those, `localrule X:` for
# the jobs it ran itself (prepare_data, the table and the figure)
expected=$(grep -E '^rule [a-z0-9_]+:$' "$OUT/slurm/snakemake.log" | sed 's/^rule \(.*\):$/\1/' | sort | uniq -c)
n_local=$(grep -cE '^localrule [a-z0-9_]+:$' "$OUT/slurm/snakemake.log" || true)
[ -n "$expected" ] || die "Snakemake sent no job to SLURM (log: $OUT/slurm/snakemake.log)"
n_sent=$(awk '{s += $1} END {print s}' <<<"$expected")
[ -z "$total" ] || [ $(( n_sent + n_local )) -eq "$total" ] \
  || die "$n_sent jobs sent to SLURM + $n_local local != $total jobs in the DAG"
sleep 2   # let the last records reach slurmdbd
sacct -n -P -X --name "$run_id" -S now-1days -o JobID,Comment,State,AllocTRES \
  >"$OUT/slurm/sacct.txt"
python3 - "$OUT/slurm/sacct.txt" "$REPO/.snakemake/slurm_logs" <<PY || die "the SLURM records do not match the DAG (see above)"
import collections, pathlib, sys
sacct, logdir = sys.argv[1], pathlib.Path(sys.argv[2])
expected = {}
for line in """$expected""".strip().splitlines():
    n, rule = line.split()
    expected[rule] = int(n)
train = {"train_base", "finetune", "scratch", "latency"}  # the rules that ask for a GPU
got, problems = collections.Counter(), []
logs = {p.stem: p for p in logdir.rglob("*.log")}
for line in pathlib.Path(sacct).read_text().splitlines():
    jobid, comment, state, tres = line.split("|")
    rule = comment.removeprefix("rule_").split("_wildcards_")[0]
    got[rule] += 1
    gpu = "gres/gpu=1" in tres.split(",")
    if state != "COMPLETED":
        problems.append(f"job {jobid} ({comment}) ended {state}")
    if (rule in train) != gpu:
        problems.append(f"job {jobid} ({rule}): AllocTRES {tres!r}, " + ("no GPU" if rule in train else "a GPU it did not ask for"))
    if jobid not in logs:
        problems.append(f"job {jobid} ({rule}): no log {logdir}/rule_{rule}/.../{jobid}.log")
if got != collections.Counter(expected):
    problems.append(f"sacct has jobs per rule {dict(got)}, the DAG {expected}")
for p in problems:
    print("slurm-smoke:", p, file=sys.stderr)
n_train = sum(got[r] for r in train)
print(f"slurm-smoke: sacct: {sum(got.values())} jobs COMPLETED through SLURM ({dict(sorted(got.items()))}); "
      f"{n_train} training and latency jobs allocated gres/gpu=1; a SLURM log for each")
sys.exit(1 if problems else 0)
PY
n_slurm=$(wc -l <"$OUT/slurm/sacct.txt")

# ---------------------------------------------------------------- 4. same table as a local run?
LOCAL_CFG=(--config scale=smoke device=cpu)
reference=""
if [ -f results/tables/l1.csv ]; then
  # results/ counts when Snakemake would redo nothing there and every run in it trained on CPU
  if snakemake -n --cores 1 --config data_root="$DATA_ROOT" -- table1 2>&1 | grep -q "Nothing to be done" \
     && python3 - <<'PY'
import glob, json, sys
runs = glob.glob("results/runs/smoke/**/metrics.json", recursive=True)
sys.exit(0 if runs and all(str(json.load(open(f)).get("device", "")).startswith("cpu") for f in runs) else 1)
PY
  then
    reference=results/tables/l1.csv
    say "local reference: results/tables/l1.csv (up to date, trained on CPU)"
  else
    say "results/ is not an up-to-date CPU smoke run: making a local reference run"
  fi
fi
if [ -z "$reference" ]; then
  # kept between calls so that only what changed reruns, but keyed by the code: Snakemake does
  # not rerun a job when only src/ changed, so results of older code are never a reference
  code=$(cat <(git ls-files -s -- src workflow Snakefile config.yaml) \
             <(git diff HEAD -- src workflow Snakefile config.yaml) | sha1sum | cut -c1-12)
  find "$OUT" -maxdepth 1 -name 'local*' ! -name "local-$code" -exec rm -rf {} +
  LOCAL=$OUT/local-$code
  mkdir -p "$LOCAL"
  printf 'results: %s\ndata_root: %s\ndownload: false\n' "$LOCAL/results" "$DATA_ROOT" >"$LOCAL/run.yaml"
  t_local=$(date +%s)
  timeout -k 30 "$LIMIT" snakemake --cores "$(nproc)" --configfile "$LOCAL/run.yaml" "${LOCAL_CFG[@]}" -- table1 \
    >"$LOCAL/snakemake.log" 2>&1 || { tail -30 "$LOCAL/snakemake.log" >&2; die "the local reference run failed"; }
  say "local reference run in $LOCAL (kept while the code is the same, so only what changed reruns):" \
    "$(( $(date +%s) - t_local ))s"
  reference=$LOCAL/results/tables/l1.csv
fi
python3 - "$OUT/slurm/results/tables/l1.csv" "$reference" <<'PY' || die "l1.csv through SLURM differs from the local run"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
if [r["model"] for r in a] != [r["model"] for r in b]:
    sys.exit(f"slurm-smoke: rows differ: {[r['model'] for r in a]} vs {[r['model'] for r in b]}")
if set(a[0]) != set(b[0]):
    sys.exit(f"slurm-smoke: columns differ: only SLURM {sorted(set(a[0]) - set(b[0]))}, "
             f"only local {sorted(set(b[0]) - set(a[0]))}")
cols = [c for c in a[0] if c.endswith(("_mean", "_std", "_n")) and not c.startswith("paper_")]
cols += ["macs", "params", "macs_reduction_pct", "params_reduction_pct"]
bad = [(ra["model"], c, ra[c], rb[c]) for ra, rb in zip(a, b) for c in cols if ra[c] != rb[c]]
for m, c, x, y in bad:
    print(f"slurm-smoke: {m} {c}: SLURM {x} != local {y}", file=sys.stderr)
if bad:
    sys.exit(1)
print(f"slurm-smoke: l1.csv identical to the local run in all {len(cols)} accuracy/MACs/params columns of {len(a)} rows")
PY

cat "$OUT/slurm/results/tables/l1.md"
echo
say "summary: cluster start-up ${startup}; ${n_slurm} jobs run through SLURM in ${run_s} s;" \
  "whole check $(( $(date +%s) - t_all )) s"
