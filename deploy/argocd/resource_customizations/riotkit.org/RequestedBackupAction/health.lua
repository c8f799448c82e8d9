-- ArgoCD health check for riotkit.org/RequestedBackupAction (backup-maker).
-- Written for ArgoCD's Lua 5.1 (gopher-lua); deploy/argocd/tests runs it on Lua 5.1 and 5.4.
-- `obj` is the live object; the result is {status = Healthy|Progressing|Degraded, message}.
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the action controller to pick up this action"
  return hs
end

local phase = obj.status.phase
local ready = condition("Ready")

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = text(condition("Complete"), "The " .. tostring(obj.spec and obj.spec.action or "backup") .. " action succeeded")
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = text(condition("Failed"), text(ready, "The action failed"))
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- Waiting for the scheduled-controller's part (the ScheduledBackup, or its PodTemplate) is progress.
  if ready.reason == "WaitingForScheduledBackup" or ready.reason == "WaitingForPodTemplate" then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = text(ready, "Not ready")
  return hs
end

hs.status = "Progressing"
if phase == "Running" then
  hs.message = text(ready, "The action is running")
else
  hs.message = text(ready, "The action is pending")
end
return hs
