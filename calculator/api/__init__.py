"""The REST API (/api/v1/): Django REST framework views over the same selectors, calculations
and services as the pages."""
