from django.http import HttpRequest, HttpResponse


def calculator(request: HttpRequest) -> HttpResponse:
    return HttpResponse("LLM Tools")
