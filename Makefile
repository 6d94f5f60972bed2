# Set-up and checks. `make test` is what CI runs (.ci/run); `make demo` is the main job.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install lint format test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	# CPU build of PyTorch first, so that the project's torch requirement is already met.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"

# ruff (configured in pyproject.toml): lint, and the code formatted as `make format` leaves it
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -q

# AU intensities (CSV) and AU maps (overlay PNG) for a real photo shipped with matplotlib,
# with the model bundled in the package; offline.
demo: install
	$(BIN)/aumaps predict "$$($(BIN)/python -c 'import matplotlib; print(matplotlib.get_data_path())')/sample_data/grace_hopper.jpg" \
		--out demo-output/results.csv --maps demo-output/maps
	@echo "open demo-output/maps/grace_hopper.png"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache demo-output
