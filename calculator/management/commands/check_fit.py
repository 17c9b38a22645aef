"""`manage.py check_fit request.json` (or `-` for stdin): the pre-flight check offline, for CI
and job launchers. Prints the answer as JSON; exit status 0 when it passes, 1 when it does not,
2 for a request that is not valid."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from calculator.domain.jsontext import loads_bounded
from calculator.domain.preflight import preflight

MAX_REQUEST_BYTES = 1_048_576


class Command(BaseCommand):
    help = "Pre-flight: does a workload fit its GPUs, across the error band? (exit 0 / 1)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request", help="A JSON file with the calculate request, or -")
        parser.add_argument("--plan", action="store_true", help="Print the whole plan too.")

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["request"]
        try:
            if source == "-":
                text = sys.stdin.read(MAX_REQUEST_BYTES + 1)
            else:
                with open(source, encoding="utf-8") as file:
                    text = file.read(MAX_REQUEST_BYTES + 1)
        except OSError as error:
            raise CommandError(f"Cannot read {source}: {error.strerror}") from None
        if len(text) > MAX_REQUEST_BYTES:
            raise CommandError("The request is larger than 1 MB.", returncode=2)
        try:
            payload = loads_bounded(text)
            answer = preflight(user=None, payload=payload)
        except ValueError as error:  # EstimateError too: "field: message"
            raise CommandError(str(error), returncode=2) from None
        if not options["plan"]:
            answer = {key: value for key, value in answer.items() if key != "plan"}
        self.stdout.write(json.dumps(answer, indent=2))
        if not answer["pass"]:
            sys.exit(1)
