"""`{% save_estimate_form %}`: the calculator's save box, with its form built here, not in HTML."""

from __future__ import annotations

from html import escape
from typing import Any

from django import forms, template
from django.http import QueryDict
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from calculator.forms.estimates import SAVE_PREFIX, EstimateDetailsForm, save_draft
from calculator.selectors import team_choices_for_request

register = template.Library()


@register.inclusion_tag("calculator/estimates/save_form.html", takes_context=True)
def save_estimate_form(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    on_calculator = request.resolver_match and request.resolver_match.url_name == "calculator"
    if not on_calculator:
        # The results fragment is also shown on permalinks: nothing to save there.
        return {
            "request": request,
            "user": request.user,
            "save_form": None,
            "save_fields": None,
            "hidden": True,
        }
    inputs = None
    draft = None
    form = None
    fields = None
    if request.user.is_authenticated:
        # a failed save's title and notes, kept until a save succeeds (views/estimates.py)
        draft = save_draft(request.session)
        form = EstimateDetailsForm(prefix=SAVE_PREFIX, user=request.user, initial=draft)
        teams = [(slug, name) for _, slug, name in team_choices_for_request(request)]
        fields = save_form_fields(form, teams)
        inputs = hidden_inputs(request.GET)
    return {
        "request": request,
        "user": request.user,
        "save_form": form,
        "save_fields": fields,
        "hidden_inputs": inputs,
        "hidden": False,
        "open": draft is not None,
    }


def hidden_inputs(query: QueryDict) -> SafeString:
    """The calculator's inputs as the save form's hidden fields, one for each value of each
    name, in the query's order (the server recomputes from them). Written here: through
    template nodes (two loops over the form's 60-odd fields) they were a third of a signed-in
    visitor's kept fragment."""
    return SafeString(
        "".join(
            f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
            for name, values in query.lists()
            for value in values
        )
    )


def save_form_fields(form: EstimateDetailsForm, teams: list[tuple[str, str]]) -> SafeString:
    """The save form's fields, each in `<div class="field">`, as `{{ field.as_field_group }}`
    writes them with Django's default form templates (the same names, ids, labels, help text
    and attributes), but in Python: through the templates they were half of each signed-in
    fragment's time, for every keystroke. The team select's options are `teams` (slug, name:
    the user's teams, read once for the request) instead of the field's own query.

    A bound form (with errors to show) is left to Django's templates, so that its errors are
    written exactly as everywhere else (the save box's form is never bound today), and so is a
    form without ids or with a CSS class for required fields, which these functions do not
    write."""
    if form.is_bound or not form.auto_id or getattr(form, "required_css_class", None):
        return format_html_join(
            "", '<div class="field">{}</div>', ((field.as_field_group(),) for field in form)
        )
    groups = []
    for field in form:
        widget = field.field.widget
        if isinstance(widget, forms.RadioSelect):
            groups.append(_radio_group(field))
        elif isinstance(widget, forms.Select) and field.name == "team":
            groups.append(_labelled(field, _select(field, teams)))
        elif isinstance(widget, forms.Textarea):
            groups.append(_labelled(field, _textarea(field)))
        elif isinstance(widget, forms.TextInput):
            groups.append(_labelled(field, _input(field)))
        else:  # a field this function does not know: Django's own rendering
            groups.append(field.as_field_group())
    return format_html_join("", '<div class="field">{}</div>', ((group,) for group in groups))


def _attrs(attrs: dict[str, Any]) -> SafeString:
    """Attributes as django/forms/widgets/attrs.html writes them: in their order, True as a
    bare name, False left out (Django's flatatt sorts them)."""
    return format_html_join(
        "",
        "{}",
        (
            (format_html(" {}", name) if value is True else format_html(' {}="{}"', name, value),)
            for name, value in attrs.items()
            if value is not False
        ),
    )


def _widget(field: forms.BoundField) -> dict[str, Any]:
    """The widget's context as Django's templates get it (pure Python: no template)."""
    attrs = field.build_widget_attrs({})
    if field.auto_id and "id" not in field.field.widget.attrs:
        attrs.setdefault("id", field.auto_id)
    return field.field.widget.get_context(field.html_name, field.value(), attrs)["widget"]


def _label_text(field: forms.BoundField) -> str:
    """The label with the form's suffix, as `BoundField.label_tag` adds it."""
    label = str(field.label or "")
    suffix = (
        field.form.label_suffix if field.field.label_suffix is None else field.field.label_suffix
    )
    if suffix and label and label[-1] not in ":?.!":
        label += suffix
    return label


def _help(field: forms.BoundField) -> SafeString:
    if not field.help_text:
        return mark_safe("")
    help_id = format_html(' id="{}_helptext"', field.auto_id) if field.auto_id else ""
    # help text is the form's own (not user input): Django writes it with |safe too
    return format_html('<div class="helptext"{}>{}</div>', help_id, mark_safe(field.help_text))


def _labelled(field: forms.BoundField, control: SafeString) -> SafeString:
    """The label, help text and control, as field.html with `BoundField.label_tag` (the field
    has an id: a form without ids is left to Django)."""
    label: SafeString | str = ""
    if field.label:
        label_for = field.id_for_label
        label = format_html(
            "<label{}>{}</label>",
            format_html(' for="{}"', label_for) if label_for else "",
            _label_text(field),
        )
    return format_html("{}{}{}", label, _help(field), control)


def _input(field: forms.BoundField) -> SafeString:
    widget = _widget(field)
    value = "" if widget["value"] is None else format_html(' value="{}"', widget["value"])
    return format_html(
        '<input type="{}" name="{}"{}{}>',
        widget["type"],
        widget["name"],
        value,
        _attrs(widget["attrs"]),
    )


def _textarea(field: forms.BoundField) -> SafeString:
    widget = _widget(field)
    # the line break after the tag as Django writes it: a browser drops the first one, so a
    # value that starts with a line break keeps it
    return format_html(
        '<textarea name="{}"{}>\n{}</textarea>',
        widget["name"],
        _attrs(widget["attrs"]),
        widget["value"] or "",
    )


def _select(field: forms.BoundField, options: list[tuple[str, str]]) -> SafeString:
    """A select of `options` (value, label) after the field's empty choice."""
    widget = field.field.widget
    attrs = field.build_widget_attrs({})
    if field.auto_id and "id" not in widget.attrs:
        attrs.setdefault("id", field.auto_id)
    attrs = widget.build_attrs(widget.attrs, attrs)
    selected = set(widget.format_value(field.value()))
    empty_label = getattr(field.field, "empty_label", None)
    choices = [*([("", empty_label)] if empty_label is not None else []), *options]
    written = []
    for value, label in choices:
        is_selected = str(value) in selected
        written.append((str(value), " selected" if is_selected else "", label))
        if is_selected and not widget.allow_multiple_selected:
            selected = set()  # only the first match, as Django's Select
    return format_html(
        '<select name="{}"{}>{}</select>',
        field.html_name,
        _attrs(attrs),
        format_html_join("", '<option value="{}"{}>{}</option>', written),
    )


def _radio_group(field: forms.BoundField) -> SafeString:
    """A RadioSelect in its fieldset, as Django's field.html and multiple_input.html."""
    widget = _widget(field)
    described = field.aria_describedby
    options = format_html_join(
        "",
        '<div><label{}><input type="{}" name="{}" value="{}"{}> {}</label></div>',
        (
            (
                format_html(' for="{}"', option["attrs"]["id"])
                if option["attrs"].get("id")
                else "",
                option["type"],
                option["name"],
                option["value"],
                _attrs(option["attrs"]),
                option["label"],
            )
            for _, group, _ in widget["optgroups"]
            for option in group
        ),
    )
    box_id = widget["attrs"].get("id")
    return format_html(
        "<fieldset{}>{}{}<div{}>{}</div></fieldset>",
        format_html(' aria-describedby="{}"', described) if described else "",
        format_html("<legend>{}</legend>", _label_text(field)) if field.label else "",
        _help(field),
        format_html(' id="{}"', box_id) if box_id else "",
        options,
    )
