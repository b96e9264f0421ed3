"""The paper's experiments: the CMKD grid, its controls, reuse of finished cells, reports and figures."""
