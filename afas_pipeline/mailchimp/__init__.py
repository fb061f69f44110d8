"""The Mailchimp side of a sync: merge-field values (`merge_values`)."""
