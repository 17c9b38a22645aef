from __future__ import annotations

from django.urls import path, re_path

from calculator.api import check, runs, views

urlpatterns = [
    # Exactly /api/v1/calculate, without a trailing slash (docs/design.md, the estimate contract).
    path("calculate", views.CalculateView.as_view(), name="api-calculate"),
    path("check", check.CheckView.as_view(), name="api-check"),
    path("profiles/", views.ProfileListView.as_view(), name="api-profile-list"),
    path("profiles/<int:pk>/", views.ProfileDetailView.as_view(), name="api-profile-detail"),
    path("estimates/", views.EstimateListView.as_view(), name="api-estimate-list"),
    path("estimates/<int:pk>/", views.EstimateDetailView.as_view(), name="api-estimate-detail"),
    path(
        "estimates/by-public-id/<slug:public_id>/",  # public ids are URL-safe base64
        views.EstimateByPublicIdView.as_view(),
        name="api-estimate-by-public-id",
    ),
    path(
        "estimates/<slug:public_id>/runs/",
        runs.MeasuredRunListView.as_view(),
        name="api-estimate-runs",
    ),
    path(
        "estimates/<slug:public_id>/runs/<int:run_id>/",
        runs.MeasuredRunDetailView.as_view(),
        name="api-estimate-run",
    ),
    path("catalog/models/", views.CatalogModelListView.as_view(), name="api-catalog-list"),
    # By Hugging Face repo id, which contains a slash: meta-llama/Llama-3.1-8B. (By id, a catalog
    # model is also at profiles/<id>/.)
    re_path(
        r"^catalog/models/(?P<slug>[-\w.]+(?:/[-\w.]+)*)/$",
        views.CatalogModelBySlugView.as_view(),
        name="api-catalog-by-slug",
    ),
    path("gpus/", views.GpuListView.as_view(), name="api-gpu-list"),
    path("gpus/<slug:slug>/", views.GpuDetailView.as_view(), name="api-gpu-detail"),
    path("teams/", views.TeamListView.as_view(), name="api-team-list"),
    path("teams/<slug:slug>/", views.TeamDetailView.as_view(), name="api-team-detail"),
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found),  # any path, a newline in it too
]
