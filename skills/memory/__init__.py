"""The memory skill: remember, recall and forget on the user's long-term memory."""
