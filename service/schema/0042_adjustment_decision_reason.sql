-- Why finance decided a large points adjustment as it did: the API asks it of every rejection (a rejected
-- request says why), an approval may carry one. Requests decided before this have none.

ALTER TABLE points_adjustment_requests
    ADD COLUMN decision_reason text CHECK (length(decision_reason) BETWEEN 3 AND 200);
