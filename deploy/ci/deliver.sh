#!/usr/bin/env bash
# Continuous delivery of a model: train -> gate -> publish -> canary rollout, in plain shell.
#
#   deploy/ci/deliver.sh                  train (edgefleet train), then gate, publish and roll out the package
#   deploy/ci/deliver.sh --package PKG    skip training: gate, publish and roll out a package built elsewhere
#
# Every decision is taken from the commands' --json output and exit codes, never from their human-readable text
# (which may change): see deploy/ci/README.md for the variables, and docs/DESIGN.md section 6 for the commands.
#
# Exit codes: 0 delivered (the rollout succeeded, or was started when DELIVER_WATCH=0); 4 the gate refused the
# package (nothing was published); 5 the rollout ended halted or aborted; 64 bad usage or configuration; any
# other code is the failing edgefleet command's own (1 refused or failed, 2 bad input, 3 server not reachable).
# The last line on stdout is a JSON summary of what was delivered; progress goes to stderr.
set -euo pipefail

EXIT_GATE=4 EXIT_ROLLOUT=5 EXIT_USAGE=64

say() { printf 'deliver: %s\n' "$*" >&2; }
die() { say "error: $2"; exit "$1"; }

# json FIELD.PATH < document: one value of a JSON document (dotted path; list items by index), printed as JSON
# for objects/lists/booleans/null and raw for strings and numbers. Python, not jq: every edgefleet install has it.
json() {
    "$PYTHON" -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else json.dumps(value))
' "$1"
}

# report STATE: the last line on stdout, for the CI job (and for people reading its log).
report() {
    "$PYTHON" -c 'import json, sys; p, m, s, r, st = sys.argv[1:]
print(json.dumps({"package": p, "model": m, "sha256": s, "rollout": int(r), "state": st}))' \
        "$package" "$model" "$sha256" "$rollout_id" "$1"
}

PYTHON=${PYTHON:-python3}
read -r -a EDGEFLEET <<<"${EDGEFLEET_CMD:-edgefleet}"  # e.g. "python -m edgefleet" in a checkout

package=""
while (($#)); do
    case $1 in
        --package) (($# >= 2)) || die $EXIT_USAGE "--package needs a file"; package=$2; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" >&2; exit 0 ;;
        *) die $EXIT_USAGE "unknown argument $1 (see --help)" ;;
    esac
done

# The server and the operator key come from the environment the edgefleet commands read themselves.
[[ -n ${EDGEFLEET_SERVER:-} ]] || die $EXIT_USAGE "set EDGEFLEET_SERVER to the fleet server's URL"
[[ -n ${EDGEFLEET_API_KEY:-} || -n ${EDGEFLEET_API_KEY_FILE:-} ]] ||
    die $EXIT_USAGE "set EDGEFLEET_API_KEY (or EDGEFLEET_API_KEY_FILE) to an operator API key"
export EDGEFLEET_SERVER

precision=${DELIVER_PRECISION:-int8}
[[ $precision == int8 || $precision == fp32 ]] || die $EXIT_USAGE "DELIVER_PRECISION must be int8 or fp32"

# 1. Train (or take the package given). -------------------------------------------------------------------------
if [[ -z $package ]]; then
    train_args=(--data "${TRAIN_DATA:-digits}" --out "${TRAIN_OUT:-build/models}" --version "${MODEL_VERSION:-1.0.0}"
                --quiet --json)
    if [[ -n ${EDGEFLEET_SIGNING_KEY:-} ]]; then train_args+=(--signing-key "$EDGEFLEET_SIGNING_KEY"); fi
    read -r -a extra <<<"${TRAIN_ARGS:-}"
    say "training: ${EDGEFLEET[*]} train ${train_args[*]} ${extra[*]}"
    summary=$("${EDGEFLEET[@]}" train "${train_args[@]}" "${extra[@]}")
    package=$(json "packages.$precision" <<<"$summary")
    deployable=$(json "deployable.$precision" <<<"$summary")
    flags=$(json flags <<<"$summary")
else
    [[ -f $package ]] || die $EXIT_USAGE "no package file at $package"
    inspected=$("${EDGEFLEET[@]}" model inspect "$package" --json)  # the server verifies the signature on publish
    deployable=$(json manifest.deployable <<<"$inspected")
    flags=$(json manifest.flags <<<"$inspected")
fi

# 2. The gate: training marks a package not deployable when its INT8 accuracy drops more than --int8-threshold
# points below FP32 (or for any other flag). Such a package is never published from CI.
if [[ $deployable != true ]]; then
    say "gate: $package is NOT deployable: $flags"
    exit $EXIT_GATE
fi
say "gate: $package is deployable"

# 3. Publish to the server's registry (publishing the same bytes again is a no-op, so a re-run is safe).
published=$("${EDGEFLEET[@]}" model publish "$package" --json)
model="$(json name <<<"$published"):$(json version <<<"$published")"
sha256=$(json sha256 <<<"$published")
say "published $model (sha256 $sha256, new: $(json created <<<"$published"))"

# 4. A staged rollout: a canary wave first; each wave starts only when the previous one is healthy.
gates=()  # the health gates each device must pass on the new model; unset: the server's defaults
if [[ -n ${ROLLOUT_MIN_FPS:-} ]]; then gates+=(--min-fps "$ROLLOUT_MIN_FPS"); fi
if [[ -n ${ROLLOUT_MAX_P95_MS:-} ]]; then gates+=(--max-p95-ms "$ROLLOUT_MAX_P95_MS"); fi
if [[ -n ${ROLLOUT_MAX_ERROR_RATE:-} ]]; then gates+=(--max-error-rate "$ROLLOUT_MAX_ERROR_RATE"); fi
rollout=$("${EDGEFLEET[@]}" rollout create --model "$model" --target "${ROLLOUT_TARGET:-all}" \
    --canary "${ROLLOUT_CANARY:-10%}" --waves "${ROLLOUT_WAVES:-3}" --max-failures "${ROLLOUT_MAX_FAILURES:-0%}" \
    --wave-timeout "${ROLLOUT_WAVE_TIMEOUT:-1800}" "${gates[@]}" --json)
rollout_id=$(json id <<<"$rollout")
say "rollout $rollout_id started: $model -> ${ROLLOUT_TARGET:-all}"

# 5. Follow it to its end: `rollout status --watch` exits 0 only when it succeeded.
state=$(json state <<<"$rollout")
if [[ ${DELIVER_WATCH:-1} == 1 ]]; then
    if final=$("${EDGEFLEET[@]}" rollout status "$rollout_id" --watch --json); then
        state=$(json state <<<"$final")
    else
        code=$?
        [[ -n $final ]] || exit "$code"  # no answer at all (server gone): the command's own code
        state=$(json state <<<"$final")
        say "rollout $rollout_id ended $state: $(json reason <<<"$final")"
        report "$state"
        exit $EXIT_ROLLOUT
    fi
fi
say "rollout $rollout_id: $state"
report "$state"
