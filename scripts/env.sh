# shellcheck shell=bash
# Create or update the project's virtual environment (.venv in the repository root) and
# put it first on PATH.
#
#   source scripts/env.sh     # from bash scripts (scripts/test.sh, scripts/demo.sh)
#   bash scripts/env.sh       # only set up .venv; then `. .venv/bin/activate` if you like
#
# The environment is rebuilt only when the hash of pyproject.toml + scripts/env.sh +
# toolchain/backends/lava/patch.py differs from the stamp in .venv; otherwise this takes a few ms.
# Stages: venv (python3.11) -> project + deps (pip install -e .[test], torch pinned to the
# CPU wheel 2.13.0) -> lava-nc/lava-dl (--no-deps --ignore-requires-python, they declare
# python<3.11 and pin old torch) -> python -m toolchain.backends.lava.patch (Python 3.11 fixes, import check).
#
# Note: this file turns on `set -euo pipefail` in the shell that sources it (so a failed
# setup stops the calling script). Do not source it from an interactive shell.

set -euo pipefail

SUL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUL_VENV="$SUL_ROOT/.venv"
_sul_stamp="$SUL_VENV/.spiking-unet-loihi-env.stamp"
_sul_python="${SUL_PYTHON:-python3.11}"

_sul_hash() {
    cat "$SUL_ROOT/pyproject.toml" "$SUL_ROOT/scripts/env.sh" "$SUL_ROOT/toolchain/backends/lava/patch.py" \
        | sha256sum | cut -d' ' -f1
}

_sul_up_to_date() {
    [[ -x "$SUL_VENV/bin/python" && -f "$_sul_stamp" ]] && [[ "$(<"$_sul_stamp")" == "$1" ]]
}

_sul_log() { echo "[env] $*" >&2; }

# pip, quiet and non-interactive; drop the harmless "Location ... is ignored" notes that
# this machine's pip.conf (extra file:// indexes) prints for packages they do not hold.
_sul_pip() {
    "$SUL_VENV/bin/python" -m pip -q --no-input --disable-pip-version-check "$@" \
        2> >(grep -v -e "^WARNING: Location '.*' is ignored" >&2 || true)
}

_sul_setup() {
    local want="$1"
    if ! command -v "$_sul_python" >/dev/null 2>&1; then
        echo "[env] ERROR: $_sul_python not found (this project needs Python 3.11)" >&2
        return 1
    fi
    local t0=$SECONDS
    if [[ ! -x "$SUL_VENV/bin/python" ]] || ! "$SUL_VENV/bin/python" -c \
        'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        _sul_log "creating $SUL_VENV with $("$_sul_python" --version 2>&1)"
        rm -rf "$SUL_VENV"
        "$_sul_python" -m venv "$SUL_VENV"
    else
        _sul_log "updating $SUL_VENV (pyproject.toml or the env scripts changed)"
    fi
    rm -f "$_sul_stamp"

    _sul_log "installing torch==2.13.0 (CPU) and the project with its [test] extra"
    # Install torch alone first: its exact pin is what keeps pip on the CPU wheel.
    _sul_pip install "torch==2.13.0"
    # Editable in "compat" mode: a .pth with the repository root, so packages added to
    # toolchain/ or netx_export/ later are importable without reinstalling.
    _sul_pip install --no-build-isolation --config-settings editable_mode=compat \
        -e "$SUL_ROOT[test]"

    _sul_log "installing lava-nc 0.10.0 + lava-dl 0.6.0 (--no-deps --ignore-requires-python)"
    # --force-reinstall gives the patcher pristine sources every time it runs.
    _sul_pip install --no-deps --ignore-requires-python --force-reinstall \
        "lava-nc==0.10.0" "lava-dl==0.6.0"

    _sul_log "patching lava for Python 3.11"
    "$SUL_VENV/bin/python" -m toolchain.backends.lava.patch >&2

    echo "$want" >"$_sul_stamp"
    _sul_log "environment ready in $((SECONDS - t0)) s"
}

_sul_want="$(_sul_hash)"
if ! _sul_up_to_date "$_sul_want"; then
    # Serialise concurrent setups (two scripts started at once); re-check under the lock.
    exec {_sul_lock_fd}>"$SUL_ROOT/.venv.lock"
    if ! flock -n "$_sul_lock_fd"; then
        _sul_log "waiting for another setup of $SUL_VENV to finish"
        flock "$_sul_lock_fd"
    fi
    if ! _sul_up_to_date "$_sul_want"; then
        # Loud failure: report the failing command, then stop the calling script.
        trap '_sul_rc=$?; _sul_log "ERROR: environment setup failed (exit $_sul_rc) at: $BASH_COMMAND"; exit $_sul_rc' ERR
        set -E
        _sul_setup "$_sul_want"
        set +E
        trap - ERR
    fi
    flock -u "$_sul_lock_fd"
    exec {_sul_lock_fd}>&-
fi
unset _sul_want _sul_lock_fd

# Activate (without sourcing bin/activate, which is not written for `set -u`).
export VIRTUAL_ENV="$SUL_VENV"
case ":$PATH:" in
    *":$SUL_VENV/bin:"*) ;;
    *) export PATH="$SUL_VENV/bin:$PATH" ;;
esac
unset PYTHONHOME
export PIP_NO_INPUT=1
