# make run   — install what is missing, build, start the engine on its embedded
#              Kafka broker with the simulated city, and show incidents flowing.
# make test  — install what is missing, build, run every test.
# make soak  — the fault tests' long versions and SOAK_MINUTES (default 30) of
#              steady input with periodic kill -9 (docs/RELIABILITY.md).
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= deploy/cityloop.example.yaml
CMAKE_FLAGS ?=
SOAK_MINUTES ?= 30

.PHONY: all deps configure build run test test-unit smoke asan bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/bin/cityloop run --config $(CONFIG) --embedded-kafka --simulate --summary \
	  --store $(BUILD)/run-store

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 600
	python3 ../shared/tools/contract-smoke $(BUILD)/bin/cityloop $(CONFIG) || \
	  { test ! -e ../shared/tools/contract-smoke && echo "contract-smoke: not available, skipped"; }

smoke: build
	python3 ../shared/tools/contract-smoke $(BUILD)/bin/cityloop $(CONFIG)

asan:
	$(MAKE) test BUILD=build-asan BUILD_TYPE=Debug CMAKE_FLAGS="-DCITYLOOP_SANITIZE=ON -DCITYLOOP_BUILD_BENCH=OFF"

soak: deps configure
	cmake --build $(BUILD) -j$(JOBS) --target cityloop integration_test
	{ CITYLOOP_SOAK_MINUTES=$(SOAK_MINUTES) $(BUILD)/tests/integration_test --gtest_filter='Fault.*'; \
	  echo $$? > $(BUILD)/soak.rc; } 2>&1 | tee $(BUILD)/soak.log | \
	  grep --line-buffered -E '^(RELIABILITY:|kill points seed|\[ +(RUN|OK|FAILED|PASSED|SKIPPED) +\])'; \
	exit $$(cat $(BUILD)/soak.rc)

bench: build
	$(BUILD)/bin/ingest_bench

# make fuzz — every libFuzzer target (fuzz/README.md) built with clang, ASan and
# UBSan in $(FUZZ_BUILD), each run for FUZZ_SECONDS on a working copy of its
# corpus ($(FUZZ_BUILD)/corpus/NAME: new inputs stay there). Crash reproducers
# go to $(FUZZ_BUILD)/artifacts/NAME/; any crash fails the target.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(notdir $(wildcard fuzz/corpus/*))
FUZZ_FLAGS ?=

fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCITYLOOP_FUZZ=ON \
	  -DCITYLOOP_BUILD_BENCH=OFF -DCITYLOOP_BUILD_TESTS=OFF -DCITYLOOP_WERROR=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_targets
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts/$$t; \
	  cp -n fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ 2>/dev/null; \
	  dict=""; if [ -f fuzz/$$t.dict ]; then dict="-dict=fuzz/$$t.dict"; fi; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  if ! $(FUZZ_BUILD)/bin/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t/ $$dict $(FUZZ_FLAGS) $(FUZZ_BUILD)/corpus/$$t; then \
	    failed="$$failed $$t"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "fuzz: FAILED:$$failed; reproducers:"; \
	  for t in $$failed; do ls -d $(FUZZ_BUILD)/artifacts/$$t/* 2>/dev/null | sed 's/^/  /'; done; \
	  exit 1; \
	fi; \
	echo "fuzz: no crashes"

clean:
	rm -rf $(BUILD)
