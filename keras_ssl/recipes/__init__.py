"""Recipes: version-controlled training runs that produce presets."""

from keras_ssl.recipes.recipe import Recipe
from keras_ssl.recipes.recipe import load_recipe
from keras_ssl.recipes.recipe import parse_recipe
from keras_ssl.recipes.runner import train_recipe
