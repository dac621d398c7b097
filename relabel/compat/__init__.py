"""Drop-in namespaces for other libraries' APIs, implemented by relabel (see relabel/compat/cleanlab/)."""
