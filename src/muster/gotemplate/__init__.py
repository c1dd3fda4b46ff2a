"""Go 1.19's text/template language in pure Python: parse once, execute many times.

```python
from muster.gotemplate import Template

text = Template("nginx.tmpl", funcs=confd_funcs).parse(source).execute(data)
```

Errors are :class:`muster.errors.TemplateSyntaxError` (parsing) and
:class:`muster.errors.TemplateExecError` (execution), in Go's message shape.
"""

from __future__ import annotations

from muster.gotemplate.template import BUILTIN_NAMES, Template

__all__ = ["BUILTIN_NAMES", "Template"]
