#!/usr/bin/env bash
# fresh-machine-test.sh: proves the README's two commands work on a fresh,
# minimal Debian 12. Builds a bookworm root with `mmdebstrap --variant=apt`,
# clones HEAD of this repository into it, and runs, as root inside a chroot,
#   CI=true bash .ci/run         (scripts/test.sh: bootstrap, build, ctest, fuzz)
#   scripts/quickstart.sh        (build, data, 2-rank training, predictions)
# then prints each one's exit code and wall time, the ctest summary line, and
# the package count and download size the bootstrap reported.
#
# Too slow for CI (~470 packages, a full build, every test): run it by hand
# whenever scripts/bootstrap.sh, a CMakeLists.txt or the data scripts change.
# Needs root on a Debian 12 host (installs mmdebstrap if missing) and network
# access to the host's apt sources (and the npm registry for the data).
#
#   scripts/fresh-machine-test.sh [--rebuild] [--keep] [--skip-ci] [--skip-quickstart]
#     --rebuild          make the base root again instead of using the cached tarball
#     --keep             leave the root (unmounted) in its work directory afterwards
#     --skip-ci / --skip-quickstart   leave that command out (the non-root
#                        check, a few seconds, always runs)
#
# The base root is cached as a tarball in $DPCNN_FRESH_CACHE (default
# /var/cache/dpcnn-fresh/); each run unpacks a new copy under /var/tmp, so every
# run starts from the same untouched root. The tarball is remade when it is
# missing, older than 7 days, or with --rebuild.
#
# What the base root holds: Debian's Essential set plus apt (--variant=apt),
# git (a user had it to clone the project) and ca-certificates (with the host's
# extra CAs from /usr/local/share/ca-certificates, which a machine behind a
# TLS-intercepting proxy must have to reach anything). Nothing else: the
# compiler, cmake, curl, python3 and every library must come from
# scripts/bootstrap.sh, which is what this test checks.
set -euo pipefail

log() { printf 'fresh-machine-test: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

rebuild=0 keep=0 run_ci=1 run_qs=1
for a in "$@"; do
  case "$a" in
    --rebuild) rebuild=1 ;;
    --keep) keep=1 ;;
    --skip-ci) run_ci=0 ;;
    --skip-quickstart) run_qs=0 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$a' (see --help)" ;;
  esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
INCLUDE=git,ca-certificates
CACHE_DIR=${DPCNN_FRESH_CACHE:-/var/cache/dpcnn-fresh}
TARBALL=$CACHE_DIR/$SUITE-apt-${INCLUDE//,/-}.tar

[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap, chroot, mounts): su -c '$0 $*' or sudo $0 $*"
[[ -r /etc/os-release ]] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release ||
  log "warning: the host is not Debian 12; its apt sources may not fit $SUITE"
if ! command -v mmdebstrap >/dev/null; then
  log "installing mmdebstrap on the host"
  apt-get install -y --no-install-recommends mmdebstrap
fi
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
  log "warning: uncommitted changes in $REPO are NOT tested (the root gets a clone of HEAD)"
fi

# ---- the cached base root ----

# The host's apt sources, so the root downloads from the same (possibly
# proxied or snapshot) archive the host uses. deb822 files and one-line lists
# both work as mmdebstrap MIRROR arguments.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -s $f ]] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && echo "$f"
  done
  return 0
}

build_tarball() {
  local sources=() tmp
  mapfile -t sources < <(host_sources)
  [[ ${#sources[@]} -gt 0 ]] || die "no apt sources found under /etc/apt on the host"
  mkdir -p "$CACHE_DIR"
  tmp=$CACHE_DIR/.partial-$$.tar # mmdebstrap picks its output format by the suffix
  log "building the base root: mmdebstrap --variant=apt --include=$INCLUDE $SUITE (sources: ${sources[*]})"
  # The host's extra CA certificates go in before the first download, and
  # update-ca-certificates runs once ca-certificates is installed.
  mmdebstrap --variant=apt --include="$INCLUDE" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --setup-hook='mkdir -p "$1/usr/local/share/ca-certificates" &&
      { cp -a /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/" 2>/dev/null || true; }' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    --customize-hook='rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"' \
    "$SUITE" "$tmp" "${sources[@]}" ||
    { rm -f "$tmp"; die "mmdebstrap failed (see above)"; }
  mv -f "$tmp" "$TARBALL"
}

if [[ $rebuild -eq 1 || ! -s $TARBALL || -n $(find "$TARBALL" -mtime +7 2>/dev/null) ]]; then
  build_tarball
else
  log "using the cached base root $TARBALL (--rebuild to make it again)"
fi

# ---- a fresh copy, mounted ----

WORK=$(mktemp -d /var/tmp/dpcnn-fresh.XXXXXX)
ROOT=$WORK/root
mkdir -p "$ROOT"
# Logs outlive the root: each run's go to the cache directory (the last 5 kept).
LOGS=$CACHE_DIR/logs/$(date -u +%Y%m%d-%H%M%S)-$$
mkdir -p "$LOGS"
find "$CACHE_DIR/logs" -mindepth 1 -maxdepth 1 -type d | sort | head -n -5 | xargs -r rm -rf

# Mount points under $ROOT, deepest last (from /proc/self/mountinfo, field 5).
mounts_under() { awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo; }

cleanup() {
  local status=$? pids=() p left
  trap - EXIT INT TERM
  # Processes still running inside the root (a hung test, mpirun's daemons)
  # would keep the mounts busy: they are ours, end them.
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/root" 2>/dev/null) == "$ROOT" ]] && pids+=("${p#/proc/}")
  done
  if [[ ${#pids[@]} -gt 0 ]]; then
    log "ending ${#pids[@]} processes left in the root"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 1
  fi
  # Deepest first; only mounts under $ROOT are touched, never the host's.
  if [[ -n $(mounts_under "$ROOT") ]]; then
    umount -R "$ROOT" 2>/dev/null || umount -R -l "$ROOT" ||
      log "warning: could not unmount everything under $ROOT"
  fi
  left=$(mounts_under "$WORK")
  if [[ -n $left ]]; then
    log "warning: still mounted, so $WORK is left in place: $left"
  elif [[ $keep -eq 1 ]]; then
    log "kept the root in $ROOT (unmounted; delete with rm -rf $WORK)"
  else
    rm -rf --one-file-system "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "unpacking the root into $ROOT"
tar -xf "$TARBALL" -C "$ROOT"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Every installed Debian has an /etc/hosts (the installer, cloud images and
# containers write one); mmdebstrap does not. Without it localhost and the
# host name go to DNS: MPI_Init (hwloc's X display probe) then waits seconds.
cat >"$ROOT/etc/hosts" <<EOF_HOSTS
127.0.0.1	localhost
127.0.1.1	$(hostname)
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF_HOSTS
pkgs_before=$(chroot "$ROOT" dpkg-query -W -f='.\n' | wc -l)

# The root is bind-mounted onto itself first: chroot's / must be a mount
# point, or `mount --make-rslave /` (ip netns exec, the multihost tests) fails.
# It is made private so nothing mounted inside reaches the host, and every
# file system mounted under it is a new instance, not a bind of the host's, so
# unmounting it can never unmount the host's. /dev is a private tmpfs with the
# few device nodes a build and tests use (as mmdebstrap and systemd-nspawn
# do): devtmpfs or a bind of /dev would share the host's /dev, and anything
# written there (a /dev/ptmx symlink) would change the host.
mount --bind "$ROOT" "$ROOT"
mount --make-private "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount -t tmpfs -o mode=0755,nosuid dev "$ROOT/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$d"
  mknod -m 0666 "$ROOT/dev/$name" c "$major" "$minor"
done
# The TUN device, as on a Debian machine (cluster/linkemu.c and its test).
mkdir -p "$ROOT/dev/net"
mknod -m 0666 "$ROOT/dev/net/tun" c 10 200
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$ROOT/dev/pts"
ln -s pts/ptmx "$ROOT/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$ROOT/run"

log "cloning HEAD ($(git -C "$REPO" rev-parse --short HEAD)) of $REPO into the root"
git clone -q --no-hardlinks "$REPO" "$ROOT/root/dpcnn"
COMMIT=$(git -C "$ROOT/root/dpcnn" log -1 --format='%h %s' | cut -c1-80)

# A clean login-like environment: nothing from this shell leaks in except the
# proxy settings a machine behind a proxy would have.
envs=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM="${TERM:-dumb}"
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [[ -n ${!v:-} ]] && envs+=("$v=${!v}")
done

# run NAME COMMAND...: runs COMMAND in the root's clone, output to the
# terminal and $LOGS/NAME.log; sets RC[NAME] and SECS[NAME].
declare -A RC SECS
run() {
  local name=$1 t0 t1 rc
  shift
  log "---- $name: $* ----"
  t0=$(date +%s)
  # In the background with `wait`, so a signal to this script runs the trap
  # (and so the cleanup) at once instead of after the command ends.
  (
    set +e
    chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/bash -c 'cd /root/dpcnn && "$@"' bash "$@" \
      </dev/null 2>&1 | tee "$LOGS/$name.log"
    exit "${PIPESTATUS[0]}"
  ) &
  rc=0
  wait $! || rc=$?
  t1=$(date +%s)
  RC[$name]=$rc
  SECS[$name]=$((t1 - t0))
  log "---- $name: exit $rc after $((t1 - t0)) s ----"
}

# The non-root path first, while every package is still missing: the
# bootstrap must exit 2 and print an `su -c '...'` command that works. The
# command is run with apt-get install -s (simulated), so the real install is
# still the one .ci/run does. nobody cannot read /root: the script comes on stdin.
nonroot() {
  local out rc cmd
  set +e
  out=$(chroot "$ROOT" /usr/bin/env -i "${envs[@]}" HOME=/ runuser -u nobody -- bash -s \
    <"$ROOT/root/dpcnn/scripts/bootstrap.sh" 2>&1)
  rc=$?
  set -e
  printf '%s\n' "$out" | sed 's/^/  | /' >&2
  cmd=$(printf '%s\n' "$out" | sed -n "s/^  su -c '\(.*\)'\$/\1/p")
  if ! chroot "$ROOT" /usr/bin/env -i "${envs[@]}" sh -c 'command -v su' >/dev/null; then
    NONROOT="FAILED: the root has no su"
    return
  fi
  if [[ $rc -ne 2 || -z $cmd ]]; then
    NONROOT="FAILED: exit $rc, su -c line: ${cmd:-none}"
    return
  fi
  set +e
  chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/sh -c "${cmd/apt-get install/apt-get install -s}" \
    >"$LOGS/nonroot-simulated.log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    NONROOT="exit 2 with su -c '...'; that command works (simulated: $(grep -c '^Inst ' "$LOGS/nonroot-simulated.log") packages)"
  else
    NONROOT="FAILED: the printed command exits $rc (see $LOGS/nonroot-simulated.log)"
  fi
}
log "---- non-root: bootstrap.sh as nobody ----"
nonroot
log "non-root: $NONROOT"
[[ $run_ci -eq 1 ]] && run ci env CI=true bash .ci/run
[[ $run_qs -eq 1 ]] && run quickstart scripts/quickstart.sh

# ---- summary ----
echo
echo "fresh-machine-test summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores)"
echo "  root: Debian $SUITE, mmdebstrap --variant=apt --include=$INCLUDE: $pkgs_before packages"
echo "  commit: $COMMIT"
first_log=$LOGS/ci.log
[[ -f $first_log ]] || first_log=$LOGS/quickstart.log
if [[ -f $first_log ]]; then
  b=$(grep -m1 -o '^bootstrap: installing [0-9]* packages ([^)]*)' "$first_log" || true)
  echo "  ${b:-bootstrap: no install line found}"
fi
status=0
echo "  non-root bootstrap: $NONROOT"
[[ $NONROOT != FAILED* ]] || status=1
for name in ci quickstart; do
  [[ -n ${RC[$name]:-} ]] || continue
  case $name in
    ci) what="CI=true bash .ci/run" ;;
    quickstart) what="scripts/quickstart.sh" ;;
  esac
  printf '  %-24s exit %s, %s s\n' "$what:" "${RC[$name]}" "${SECS[$name]}"
  [[ ${RC[$name]} -eq 0 ]] || status=1
  if [[ $name == ci ]]; then
    s=$(grep -m1 -E '^[0-9]+% tests passed' "$LOGS/ci.log" || true)
    echo "    ctest: ${s:-no summary line (the build or bootstrap failed?)}"
    grep -E '^fuzz.sh: .* for |^Done [0-9]+ runs' "$LOGS/ci.log" | sed 's/^/    /' || true
  fi
  if [[ $name == quickstart ]]; then
    grep -E '\.png: [0-9] \(p=' "$LOGS/quickstart.log" | sed 's/^/    /' || true
  fi
done
echo "  logs: $LOGS/"
exit $status
