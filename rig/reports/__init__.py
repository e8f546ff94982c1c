"""What a run leaves: result.json (typed, with a schema), junit.xml, the timeline picture."""
