# The two commands of the README. Each first installs what is missing.
CARGO ?= cargo

.PHONY: all setup build demo test lint bench fuzz-build

all: build

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

# The PDP on loopback and three swtpm-backed endpoints (good terminal,
# tampered kernel, VM) logging in over PT-TLS; verdicts, findings, a summary.
demo: setup
	$(CARGO) run --quiet -p testnet -- demo

# The whole test suite: formatting, then every test of every crate (including
# the interop tests against ../shared/testdata and real swtpm processes), with
# a total at the end.
test: setup
	@scripts/test.sh

lint: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks that print tables: criterion for the codecs, testnet for appraisal,
# whole handshakes, the door under attack, the channel, and continuous trust
# at scale.
bench: setup
	$(CARGO) bench -p tnc-proto --bench codec
	$(CARGO) run --release -p testnet -- bench appraise
	$(CARGO) run --release -p testnet -- bench handshake
	$(CARGO) run --release -p testnet -- bench door
	$(CARGO) run --release -p testnet -- bench channel
	$(CARGO) run --release -p testnet -- bench continuous
	$(CARGO) run --release -p testnet -- bench admin
	$(CARGO) run --release -p testnet -- bench crypto

# Fuzz targets build on the stable toolchain with RUSTC_BOOTSTRAP (see README).
fuzz-build:
	cd tnc-proto/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build
	cd policy/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build
	cd pki/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build
