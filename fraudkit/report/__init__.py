"""The stakeholder report: the views the step notebooks call, masking of personal data, plots,
offline graph pictures, HTML pages and the papermill build. Nothing in fraudkit imports this package.
"""
