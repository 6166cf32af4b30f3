# Two commands for a newcomer: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := tests/interop/node
JAVA_DIR := tests/interop/java

.PHONY: run test install clean cluster lint etcd

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py clients/kafkalite_client/_records.c
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# The broker on 127.0.0.1:9092 with its data in ./kafkalite-data.
run: $(STAMP)
	$(BIN)/python -m kafkalite --listen 127.0.0.1:9092 --data-dir ./kafkalite-data

# Three brokers and etcd on loopback (127.0.0.1:9092-9094, etcd on :2379), data in ./kafkalite-cluster; Ctrl-C
# stops them all. etcd is Debian's etcd-server.
cluster: $(STAMP) etcd
	$(BIN)/python scripts/cluster.py

# etcd for cluster mode and its tests, from Debian's etcd-server, when it is missing and apt-get can install it.
etcd:
	@command -v etcd >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; } || \
		echo "make: etcd is not installed (apt-get install etcd-server); the cluster tests will skip"

# The layering (import-linter contracts in pyproject.toml) and ruff.
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .

# The whole suite, real-client interop tests included (they skip with a reason when a client is
# missing, unless CI=true). Node clients are installed into $(NODE_DIR) when npm is available;
# with java and mvn, Apache Kafka's jars are fetched (into ~/.cache/kafkalite, once) and the Java
# client tests are built.
test: $(STAMP) etcd lint
	@if command -v npm >/dev/null 2>&1 && [ ! -d $(NODE_DIR)/node_modules/kafkajs ]; then \
		(cd $(NODE_DIR) && npm install --no-audit --no-fund --loglevel=error) || true; fi
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		$(BIN)/python scripts/kafka_reference.py fetch >/dev/null || true; fi
	@if command -v mvn >/dev/null 2>&1 && [ -f $(JAVA_DIR)/pom.xml ]; then \
		mvn -q -B -f $(JAVA_DIR)/pom.xml -DskipTests package || echo "make: the Java client tests did not build"; fi
	@# Byte-compiled once: with PYTHONDONTWRITEBYTECODE set, every broker process a test starts would compile again.
	@$(BIN)/python -m compileall -q kafkalite clients/kafkalite_client >/dev/null
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) kafkalite-data kafkalite-cluster $(NODE_DIR)/node_modules
