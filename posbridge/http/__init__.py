"""The HTTP listener: provider notifications, customer display pages, manager page, ops."""
