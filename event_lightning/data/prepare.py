from event_lightning._moved import alias_module

alias_module(__name__)
