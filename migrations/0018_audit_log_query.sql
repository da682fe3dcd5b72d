-- The auditLog query (GraphQL, admins): pages newest first by id, filtered by actor or
-- operation. These indexes read a page of one actor's or one operation's rows in id
-- order instead of scanning the whole log backwards. A time range alone uses
-- audit_log_at (0004); the outcome alone is too coarse to index usefully.
CREATE INDEX audit_log_actor ON sous.audit_log (actor, id);
CREATE INDEX audit_log_operation ON sous.audit_log (operation, id);
