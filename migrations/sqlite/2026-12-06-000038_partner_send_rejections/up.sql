-- Statements a Learning Record Store refused in a send that was otherwise
-- delivered: the statement id, the LRS's HTTP status and its message (cut
-- short), shown to staff with the send.
CREATE TABLE partner_send_rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    send_id BIGINT NOT NULL REFERENCES partner_sends(id) ON DELETE CASCADE,
    statement_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX partner_send_rejections_send ON partner_send_rejections(send_id);
