"""JEXL expressions with tale's JavaScript semantics, tale's transforms, and Mustache templates.

Public API::

    compile_expression(src) -> Expression        # cached; Expression.evaluate(ctx), .roots
    evaluate(src, context) -> value
    compile_template(text) -> Template           # cached; Template.render(ctx), .roots, .is_static
    render_value(value, context) -> value        # every string and dict key, recursively
    UNDEFINED, truthy, to_js_string, to_json_value
    TRANSFORMS, register_transform, set_clock, use_clock

Every failure is an :class:`~wfctl.errors.ExpressionError` (or its subclass
:class:`~wfctl.errors.TemplateError`) whose message is one line naming the expression.
"""

from .evaluator import Expression, compile_expression, evaluate
from .jsvalues import UNDEFINED, JSUndefined, to_js_string, to_json_value, truthy
from .templates import Template, compile_template, render_value
from .transforms import TRANSFORMS, now_ms, register_transform, set_clock, use_clock

__all__ = [
    "UNDEFINED",
    "JSUndefined",
    "Expression",
    "compile_expression",
    "evaluate",
    "truthy",
    "to_js_string",
    "to_json_value",
    "Template",
    "compile_template",
    "render_value",
    "TRANSFORMS",
    "register_transform",
    "set_clock",
    "use_clock",
    "now_ms",
]
