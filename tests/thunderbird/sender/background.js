// Test only (tests/thunderbird/run): once per profile, compose and send one message from
// the demo professional's identity, the way a user would press Send, so that the run
// sees Thunderbird's own SMTP submission (XOAUTH2) and the message lands in the INBOX.
const FROM = "jean.dupont@sandbox.mssante.fr";
const TO = "jean.dupont@sandbox.mssante.fr, marie.martin@sandbox.mssante.fr";

async function sendOnce() {
  const { sent } = await browser.storage.local.get("sent");
  if (sent) {
    return;
  }
  const accounts = await browser.accounts.list();
  let identity;
  for (const a of accounts) {
    for (const i of a.identities || []) {
      if (i.email === FROM) {
        identity = i;
      }
    }
  }
  if (!identity) {
    console.log("send-once: no identity for " + FROM);
    return;
  }
  const tab = await browser.compose.beginNew({
    identityId: identity.id,
    to: TO,
    subject: "Envoyé par Thunderbird",
    plainTextBody: "Message envoyé par Thunderbird via la soumission SMTP du bac à sable (XOAUTH2).\n",
    isPlainText: true,
  });
  await browser.storage.local.set({ sent: true });
  const result = await browser.compose.sendMessage(tab.id, { mode: "sendNow" });
  console.log("send-once: sent " + JSON.stringify(result));
}

sendOnce().catch((e) => console.log("send-once: " + e));
