"""Flows (layer L7): commands that compose recipes, such as `rag-self-demos` (data stages, then the
sft and dpo recipes, then an evaluation). A flow is listed in the recipe table like a recipe; unlike
a recipe it may run other recipes."""
