"""Review: a clerk settles the fields formocr was unsure of, in a browser, and every answer is kept."""
