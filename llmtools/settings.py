"""One settings file, driven by environment variables (see .env.example)."""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


def envrate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as "60/min"; an empty value turns that throttle off."""
    rate = os.getenv(name, default).strip()
    if rate and not re.fullmatch(r"[1-9][0-9]*/(s|m|h|d)[a-z]*", rate):
        raise ImproperlyConfigured(f"{name} must be a rate such as 60/min, or empty for no limit.")
    return rate or None


DEBUG = envbool("DEBUG", "0")

SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (see .env.example), or DEBUG=1 for development."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"  # noqa: S105

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is not set. Set ALLOWED_HOSTS (comma-separated host names)"
        " when DEBUG is off."
    )
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "knox",
    "csp",
    "axes",
    "calculator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "calculator.web.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "calculator.web.middleware.DomainErrorMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "llmtools.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "calculator.web.context_processors.site",
            ],
        },
    },
]

WSGI_APPLICATION = "llmtools.wsgi.application"

# SQLite under var/ unless DATABASE_URL points elsewhere (PostgreSQL in production and CI).
(BASE_DIR / "var").mkdir(exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        conn_max_age=envint("CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # A database that does not answer (a black-holed address, a hung server) fails the request
    # after this many seconds, as a 503 (calculator/web/middleware.py), instead of holding a worker
    # until the client gives up: libpq's connect_timeout covers the whole start-up exchange.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", envint("DB_CONNECT_TIMEOUT", "5")
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# "default" holds the API throttles' counters (and the sessions' cached copies, below);
# "results" the pure results kept by calculator/domain/caching.py (an engine answer's rendered
# fragment
# for given inputs, a saved estimate's rendered sections). With REDIS_URL both live in Redis, so
# that limits hold across gunicorn workers and machines and every process shares the results;
# without it each process keeps its own in memory.
REDIS_URL = os.getenv("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "llmtools",
        },
        "results": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "llmtools-results",
            "TIMEOUT": 3600,
        },
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "results": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "results",
            "TIMEOUT": 3600,
            "OPTIONS": {"MAX_ENTRIES": 2000},  # about 10 KB each
        },
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "calculator.domain.lockout.LoginAttemptsBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins: after AXES_FAILURE_LIMIT failures for one username from one address, that pair
# is locked out for AXES_COOLOFF_MINUTES; after AXES_ADDRESS_FAILURE_LIMIT failures from one
# address, whatever the usernames, the address is (calculator/domain/lockout.py, docs/limits.md).
# Locking a username alone would let anyone lock its owner out; an address alone, a whole office.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_ADDRESS_FAILURE_LIMIT = envint("AXES_ADDRESS_FAILURE_LIMIT", "100")
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "calculator.domain.lockout.LoginAttemptsHandler"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "calculator.domain.lockout.lockout_response"
# Reverse proxies in front of the service that append to X-Forwarded-For (0: none, use the
# connection's address). Behind a proxy, without this, every visitor shares the proxy's address.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", "0")
AXES_CLIENT_IP_CALLABLE = "calculator.domain.lockout.client_address"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "calculator"
LOGOUT_REDIRECT_URL = "calculator"
ALLOW_SIGNUP = envbool("ALLOW_SIGNUP", "1")

# Models by their Hugging Face id (calculator/domain/hub.py): HUB_IMPORT=0 turns the feature off (an
# air-gapped site keeps the catalog and pasted configs); HF_ENDPOINT names a mirror or an
# internal Hub; HF_TOKEN reads gated and private repos for everyone (a user's own token wins).
HUB_IMPORT = envbool("HUB_IMPORT", "1")
HF_ENDPOINT = os.getenv("HF_ENDPOINT", "https://huggingface.co").strip().rstrip("/")
HF_TOKEN = os.getenv("HF_TOKEN", "").strip()
# Seconds for each Hub request, and for the whole import of one model (the worker's bound).
HUB_TIMEOUT_SECONDS = float(os.getenv("HUB_TIMEOUT_SECONDS", "10"))
# Imports that reach the Hub (cache misses), per user or address and minute; 0: no limit.
HUB_IMPORTS_PER_MINUTE = envint("HUB_IMPORTS_PER_MINUTE", "30")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or not envbool("STATIC_MANIFEST", "1")
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Pages link only the hashed names ({% static %} through the manifest): collectstatic keeps and
# compresses those alone, half the work it did with both names of every file.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

# Uploads and request bodies: at most 1 MB (config.json files are far smaller).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1_048_576
FILE_UPLOAD_MAX_MEMORY_SIZE = 1_048_576

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers probe /healthz over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_HTTPONLY = True
# Django's database sessions; with a shared cache, read through it (cached_db: written to both).
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if REDIS_URL
    else "django.contrib.sessions.backends.db"
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Our own origin only, no inline script or style: htmx and Swagger UI come from our static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Token first: a request without credentials then gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "calculator.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, bounded: 1 MB, 64 levels of nesting, no NaN or Infinity (calculator/api/parsers.py)
    "DEFAULT_PARSER_CLASSES": ["calculator.api.parsers.JSONParser"],
    # JSON only: DRF's browsable API needs inline scripts the Content-Security-Policy refuses
    # (and django-filter's templates); /api/docs/ (Swagger UI) is how a browser explores the API.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": [
        "calculator.api.throttling.AnonThrottle",
        "calculator.api.throttling.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": envrate("API_THROTTLE_ANON", "60/min"),
        "user": envrate("API_THROTTLE_USER", "1000/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "calculator.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "calculator.api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# API tokens (django-rest-knox): stored as SHA-512 digests, shown once, named, no expiry.
KNOX_TOKEN_MODEL = "calculator.ApiToken"
REST_KNOX = {"TOKEN_TTL": None, "TOKEN_PREFIX": "llmt_", "AUTO_REFRESH": False}

SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Tools API",
    "DESCRIPTION": "GPU memory, fit, throughput and cost estimates for large language models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "calculator.models.Role",
        "LlamaCppCacheTypeEnum": "calculator.engine.serving_llamacpp.LLAMACPP_CACHE_TYPE_NAMES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": sys.stdout, "formatter": "plain"}
    },
    "root": {"handlers": ["stdout"], "level": os.getenv("LOG_LEVEL", "INFO")},
}
