-- The last membership change announced for each worker ('joined' or 'left'), so that however many
-- control-plane replicas watch the registry, each join and each leave is announced exactly once.
ALTER TABLE workers ADD COLUMN announced text CHECK (announced IN ('joined', 'left'));
