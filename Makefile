# Two commands to start: `make run` (serve on http://127.0.0.1:8000) and `make test`.
# (serve: gunicorn reads request lines of up to 8190 bytes, its maximum: a calculator link with
# a pasted config.json is up to 8000 characters, calculator/web/views/calculator.py.)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stamp files: reinstall only when pyproject.toml changes.
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev
INSTALLED_VALIDATE := $(VENV)/.installed-validate
# Variables from .env (if present) for run and serve; the environment wins over the file.
LOAD_ENV := set -a; [ ! -f .env ] || . ./.env; set +a

.PHONY: run test serve validate validate-gpu bench clean

run: $(INSTALLED)
	@$(LOAD_ENV); export DEBUG=1; \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py load_catalog && \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

test: $(INSTALLED_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
# Production settings (DEBUG off, a real-looking secret, a host name) pass Django's deploy checks.
	DEBUG=0 SECRET_KEY=deploy-check-only-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ \
		ALLOWED_HOSTS=llmtools.example.com STATIC_MANIFEST=1 SECURE_SSL_REDIRECT=1 \
		$(BIN)/python manage.py check --deploy --fail-level WARNING
	DEBUG=1 $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/pytest

serve: $(INSTALLED)
	@$(LOAD_ENV); \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	exec $(BIN)/gunicorn llmtools.wsgi \
		--workers $${WEB_CONCURRENCY:-2} --bind $${BIND:-127.0.0.1:8000} \
		--limit-request-line 8190 \
		--access-logfile - --error-logfile -

# HTTP speed against gunicorn and PostgreSQL on 127.0.0.1 (docs/performance.md).
bench: $(INSTALLED_DEV)
	$(BIN)/python bench/http.py

validate: $(INSTALLED_VALIDATE)
	$(BIN)/python -m validation.run

# The same cases on a CUDA GPU (torch.cuda.max_memory_allocated): a GPU section in
# docs/accuracy.md beside the CPU tables (read from validation/results/, not measured again).
validate-gpu: $(INSTALLED_VALIDATE)
	$(BIN)/python -m validation.run --device cuda

clean:
	rm -rf $(VENV) var/staticfiles .pytest_cache .ruff_cache .mypy_cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(INSTALLED_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(INSTALLED) $@

$(INSTALLED_VALIDATE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,validate]'
	@touch $(INSTALLED) $(INSTALLED_DEV) $@
