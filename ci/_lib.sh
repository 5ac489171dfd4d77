# ci/_lib.sh -- helpers shared by the ci/*.sh scripts (sourced, not run).
# A script sets ci_name (the prefix of its step headers) before using step.

# a step header: "== <ci_name>: <text>"
step() { printf '\n== %s: %s\n' "${ci_name:-ci}" "$*"; }

# this machine's pip configuration warns about absent local indexes: not ours
quiet_pip() { grep -v "^WARNING: Location 'file:" || true; }

# run a noisy command with its output appended to a log; show the log's end
# on failure
logged() {
  local log=$1; shift
  if ! "$@" >> "$log" 2>&1; then
    tail -n 80 "$log"
    echo "FAILED: $* (log: $log)"
    return 1
  fi
}

# snapshot_tree REPO DEST: the working tree of REPO as it is (tracked files
# and new, not-ignored ones) copied into DEST; outside a git checkout,
# everything but build products
snapshot_tree() {
  local repo=$1 dest=$2
  if git -C "$repo" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
      (cd "$repo" && xargs -0 cp --parents -t "$dest" 2>/dev/null || true)
  else
    (cd "$repo" && tar --exclude=./build --exclude=./.git -cf - .) | (cd "$dest" && tar -xf -)
  fi
}
