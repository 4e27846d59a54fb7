"""One page: a CSRF-protected form that stores a cart in the session and flashes a message."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path


def shop(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        request.session["cart"] = request.session.get("cart", 0) + 1
        messages.success(request, "Added to your cart.")
        return HttpResponseRedirect("/")
    response = render(request, "shop.html")
    response.set_cookie("_ga", "GA1.1.example", max_age=34560000)  # dropped unless analytics is accepted
    response.set_cookie("_fbp", "fb.1.example", max_age=7776000)  # dropped unless marketing is accepted
    return response


urlpatterns = [path("", shop)]
