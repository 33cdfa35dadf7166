"""Mind Your Entropy: From Maximum Entropy to Trajectory Entropy-Constrained RL.

Zhan, Wang, Wang, Zhang, Duan, Tomizuka, Li; arXiv 2511.11592.

This package has not landed yet; its issue builds it.
"""
