# make run   — install what is missing, build, start the engine on its embedded
#              Kafka broker with the simulated city, and show incidents flowing.
# make test  — install what is missing, build, run every test.
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= deploy/cityloop.example.yaml
CMAKE_FLAGS ?=

.PHONY: all deps configure build run test test-unit smoke asan bench clean

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

bench: build
	$(BUILD)/bin/ingest_bench

clean:
	rm -rf $(BUILD)
