# The two commands a user needs:
#   make demo   set up everything, start two local clusters, run a migration
#   make test   set up everything, run the unit and integration suites
# Everything else here is a step of those two.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
TOP   := $(abspath .)
BUILD ?= $(TOP)/build
JOBS  ?= $(shell nproc)
export PKG_CONFIG_PATH := $(TOP)/.deps/librdkafka-2.8.0/lib/pkgconfig:$(PKG_CONFIG_PATH)
export KM_CACHE ?= $(TOP)/.cache
# kcat (Debian 2.0.2) cannot do SCRAM against Kafka 4; the cluster script
# lends it our librdkafka for its readiness checks.
export KM_RDKAFKA_LIBDIR ?= $(TOP)/.deps/librdkafka-2.8.0/lib

.PHONY: all deps build test demo clean jars unit asan

all: build

deps:
	@scripts/bootstrap.sh

jars: deps
	@tests/cluster/kafka-cluster fetch 3.9
	@tests/cluster/kafka-cluster fetch 4.3

$(BUILD)/Makefile: CMakeLists.txt tests/CMakeLists.txt
	@cmake -S . -B $(BUILD) -DKM_FUZZ=$(if $(shell command -v clang),ON,OFF) >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j$(JOBS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

test: build jars
	@cd $(BUILD) && ctest --output-on-failure -j1

demo: build jars
	@scripts/demo.sh

# The whole suite under AddressSanitizer and UBSan (slower; not part of
# make test).  Leak checking is off: librdkafka's static globals would
# drown the report.
asan: deps jars
	@cmake -S . -B $(TOP)/build-asan -DKM_SANITIZE=ON -DKM_FUZZ=OFF >/dev/null
	@cmake --build $(TOP)/build-asan -j$(JOBS)
	@cd $(TOP)/build-asan && ASAN_OPTIONS=detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j1

clean:
	rm -rf $(BUILD)
