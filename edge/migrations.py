"""The results store's schema: an append-only list of named migrations. Never edit one; add another."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    ("001_runs_and_results", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            device TEXT NOT NULL,
            device_facts TEXT NOT NULL,
            config TEXT NOT NULL,
            tools TEXT NOT NULL,
            dataset TEXT,
            dataset_sha256 TEXT
        );
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            created_at TEXT NOT NULL,
            device TEXT NOT NULL,
            model TEXT NOT NULL,
            source_sha256 TEXT,
            format TEXT NOT NULL,
            artifact_path TEXT NOT NULL,
            artifact_sha256 TEXT NOT NULL,
            reference_sha256 TEXT,
            size_bytes INTEGER NOT NULL,
            bits_per_weight REAL,
            parameter_count INTEGER,
            threads INTEGER,
            reps INTEGER,
            n_prompt INTEGER,
            n_gen INTEGER,
            load_s REAL,
            pp_tps REAL, pp_tps_std REAL,
            tg_tps REAL, tg_tps_std REAL,
            ttft_s REAL, ttft_s_std REAL,
            peak_rss_bytes INTEGER,
            dataset TEXT,
            dataset_sha256 TEXT,
            ctx INTEGER,
            chunks INTEGER,
            ppl REAL, ppl_unc REAL,
            kld_mean REAL, kld_unc REAL,
            same_top REAL,
            delta_p_mean REAL, delta_p_rms REAL,
            quality TEXT,
            raw TEXT
        );
        CREATE INDEX results_by_model ON results(model, device, format);
    """),
    ("002_device_conditions_and_roofline", """
        ALTER TABLE results ADD COLUMN config_sha256 TEXT;
        ALTER TABLE results ADD COLUMN conditions TEXT;
        ALTER TABLE results ADD COLUMN membw_gbs REAL;
        ALTER TABLE results ADD COLUMN decode_gbs REAL;
        CREATE INDEX results_done ON results(device, artifact_sha256, config_sha256, dataset_sha256);
    """),
    ("003_source_reference_and_uncertainty", """
        ALTER TABLE results ADD COLUMN kld_99 REAL;
        ALTER TABLE results ADD COLUMN kld_99_9 REAL;
        ALTER TABLE results ADD COLUMN kld_max REAL;
        ALTER TABLE results ADD COLUMN same_top_unc REAL;
        ALTER TABLE results ADD COLUMN ppl_base REAL;
        ALTER TABLE results ADD COLUMN ln_ppl_ratio REAL;
        ALTER TABLE results ADD COLUMN ln_ppl_ratio_unc REAL;
        ALTER TABLE results ADD COLUMN tokens_sha256 TEXT;
    """),
    ("004_task_results", """
        CREATE TABLE task_results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            device TEXT NOT NULL,
            model TEXT NOT NULL,
            format TEXT NOT NULL,
            artifact_path TEXT NOT NULL,
            artifact_sha256 TEXT NOT NULL,
            source_sha256 TEXT,
            task TEXT NOT NULL,
            task_sha256 TEXT NOT NULL,
            encoded_sha256 TEXT NOT NULL,
            task_source TEXT,
            licence TEXT,
            kind TEXT NOT NULL,
            n INTEGER NOT NULL,
            acc REAL, acc_se REAL,
            acc_norm REAL, acc_norm_se REAL,
            dacc REAL, dacc_lo REAL, dacc_hi REAL, dacc_se REAL, p_mcnemar REAL,
            flips REAL, flips_se REAL,
            choice_kl REAL, choice_kl_se REAL,
            items_per_s REAL,
            seconds REAL,
            threads INTEGER,
            reference_id INTEGER REFERENCES task_results(id),
            config_sha256 TEXT NOT NULL,
            raw TEXT
        );
        CREATE INDEX task_results_done ON task_results(device, artifact_sha256, encoded_sha256, config_sha256);
        CREATE TABLE task_items (
            task_result_id INTEGER NOT NULL REFERENCES task_results(id),
            idx INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            gold INTEGER,
            pred INTEGER,
            pred_norm INTEGER,
            correct INTEGER,
            lls TEXT,
            output TEXT,
            PRIMARY KEY (task_result_id, idx)
        );
        CREATE INDEX task_items_by_item ON task_items(item_id);
    """),
    # one row per key (what a concurrent writer upserts on): an older duplicate moves to *_superseded, the
    # newest stays; a superseded task row's items stay in task_items under its own id
    ("005_unique_result_keys", """
        CREATE TABLE results_superseded AS SELECT * FROM results WHERE id IN (
            SELECT older.id FROM results older JOIN results newer
            ON newer.device = older.device AND newer.artifact_sha256 = older.artifact_sha256
            AND newer.config_sha256 = older.config_sha256
            AND COALESCE(newer.dataset_sha256, '') = COALESCE(older.dataset_sha256, '') AND newer.id > older.id);
        DELETE FROM results WHERE id IN (SELECT id FROM results_superseded);
        CREATE UNIQUE INDEX results_key ON results (device, artifact_sha256, config_sha256, (COALESCE(dataset_sha256, '')));
        CREATE TABLE task_results_superseded AS SELECT * FROM task_results WHERE id IN (
            SELECT older.id FROM task_results older JOIN task_results newer
            ON newer.device = older.device AND newer.artifact_sha256 = older.artifact_sha256
            AND newer.encoded_sha256 = older.encoded_sha256 AND newer.config_sha256 = older.config_sha256
            AND newer.id > older.id);
        DELETE FROM task_results WHERE id IN (SELECT id FROM task_results_superseded);
        CREATE UNIQUE INDEX task_results_key ON task_results (device, artifact_sha256, encoded_sha256, config_sha256);
    """),
]
