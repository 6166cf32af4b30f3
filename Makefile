# Two commands for a newcomer: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := tests/interop/node
JAVA_DIR := tests/interop/java

.PHONY: run test install clean

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

# The whole suite, real-client interop tests included (they skip with a reason when a client is
# missing, unless CI=true). Node clients are installed into $(NODE_DIR) when npm is available;
# with java and mvn, Apache Kafka's jars are fetched (into ~/.cache/kafkalite, once) and the Java
# client tests are built.
test: $(STAMP)
	@if command -v npm >/dev/null 2>&1 && [ ! -d $(NODE_DIR)/node_modules/kafkajs ]; then \
		(cd $(NODE_DIR) && npm install --no-audit --no-fund --loglevel=error) || true; fi
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		$(BIN)/python scripts/kafka_reference.py fetch >/dev/null || true; fi
	@if command -v mvn >/dev/null 2>&1 && [ -f $(JAVA_DIR)/pom.xml ]; then \
		mvn -q -B -f $(JAVA_DIR)/pom.xml -DskipTests package || echo "make: the Java client tests did not build"; fi
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) kafkalite-data $(NODE_DIR)/node_modules
