"""Step 1, risk perception: monitors that see risk early (data health, engagement spikes, ratio
outliers, new-account bursts, promotion traffic, price intelligence) and the red-team drill.
"""
