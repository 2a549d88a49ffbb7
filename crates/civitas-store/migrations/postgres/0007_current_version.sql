-- A resource's current version lives only in `resources`; `resource_versions` keeps the versions
-- it replaced. Every resource was stored twice before, which doubled what an import writes.
ALTER TABLE resources ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';
UPDATE resources SET changed_by = COALESCE(
    (SELECT v.changed_by FROM resource_versions v
      WHERE v.code = resources.code AND v.version = resources.version),
    '');
DELETE FROM resource_versions WHERE EXISTS (
    SELECT 1 FROM resources r
     WHERE r.code = resource_versions.code AND r.version = resource_versions.version);
