"""Step 4, risk mitigation: layered decisions (block / verify / pass) with reasons, governance actions,
purchase limits, scoped lists and delayed interception.
"""
