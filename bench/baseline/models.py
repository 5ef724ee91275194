from django.db import models


class Item(models.Model):
    prompt = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
