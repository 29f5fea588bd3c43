#!/bin/sh
# `make release-smoke`: each release binary in dist/ runs — `spinlet --version`, the pinned
# kubectl's `version --client`, and `spinlet run` of a Spin hello app (the tests'
# rust-v5-hello, built from source for wasm32-wasip2) answering a request on loopback.
# The arm64 binaries run under qemu-aarch64 (Debian's qemu-user).
#
# Under qemu-user the app runs with SPIN_WASMTIME_POOLING=false: the pooling allocator
# reserves terabytes of address space for its slots, which a real kernel leaves
# unbacked but qemu-user's emulated address space commits (the emulator is OOM-killed).
#
# Usage: integration/release-smoke.sh <dist dir> <target dir> <arch>...
set -eu

dist=$1
target_dir=$2
shift 2

step() { printf '==> %s\n' "$*"; }
fail() { printf 'release-smoke: %s\n' "$*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
app_src="$repo/spin-runtime/tests/apps/rust-v5-hello"
step "building the hello app ($app_src) for wasm32-wasip2"
cargo build --quiet --release --target wasm32-wasip2 \
	--manifest-path "$app_src/Cargo.toml" --target-dir "$target_dir/release-smoke-app"
wasm="$target_dir/release-smoke-app/wasm32-wasip2/release/rust_v5_hello.wasm"
[ -f "$wasm" ] || fail "no $wasm after the build"

work=$(mktemp -d)
server=
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
cp "$wasm" "$work/app.wasm"
cat > "$work/spin.toml" <<'EOF'
spin_manifest_version = 2

[application]
name = "release-smoke"

[[trigger.http]]
route = "/..."
component = "hello"

[component.hello]
source = "app.wasm"
EOF

port=39170
for arch in "$@"; do
	case $arch in
	arm64) run=qemu-aarch64; pooling=false ;;
	amd64) run=; pooling=true ;;
	*) fail "unknown architecture $arch: use amd64 or arm64" ;;
	esac
	bin="$dist/spinlet-$arch"
	[ -x "$bin" ] || fail "$bin is missing: make release ARCHES=$arch"
	step "$bin --version: $($run "$bin" --version)"
	step "$dist/kubectl-$arch: $($run "$dist/kubectl-$arch" version --client | head -n 1)"
	port=$((port + 1))
	rm -rf "$work/cache"
	SPIN_WASMTIME_POOLING=$pooling $run "$bin" run --listen "127.0.0.1:$port" \
		--cache-dir "$work/cache" "$work" > "$work/run-$arch.log" 2>&1 &
	server=$!
	code=000
	i=0
	# Compiling under emulation takes a while: up to five minutes.
	while [ $i -lt 300 ]; do
		code=$(curl -s -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/" || true)
		[ "$code" = 200 ] && break
		kill -0 "$server" 2>/dev/null || break
		sleep 1
		i=$((i + 1))
	done
	if [ "$code" != 200 ]; then
		cat "$work/run-$arch.log" >&2
		fail "spinlet-$arch run did not answer (last status $code)"
	fi
	grep -q "method: Method::Get" "$work/body" || fail "spinlet-$arch run answered something else: $(head -c 200 "$work/body")"
	step "spinlet-$arch run: the hello app answered 200 after ${i}s"
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=
done
step "release smoke test passed: $*"
