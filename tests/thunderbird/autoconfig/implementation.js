/* global ChromeUtils, Ci, ExtensionCommon, Services */
// Test only: the steps of Thunderbird's Account Hub (accountcreation/views/email.mjs)
// for an address, without its window: the autoconfig lookup (FetchConfig.fromDB, the
// lookup behind the pref `mailnews.auto_config_url`, which the run points at the
// server's autoconfig listener), the variables of the document filled from the address,
// the logon check (ConfigVerifier: the OAuth2 login, then IMAP), the account created
// (CreateInBackend) and its mail fetched.
"use strict";

const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const { setTimeout } = ChromeUtils.importESModule("resource://gre/modules/Timer.sys.mjs");
const modules = "resource:///modules/accountcreation/";
const { FetchConfig } = ChromeUtils.importESModule(modules + "FetchConfig.sys.mjs");
const { AccountConfig } = ChromeUtils.importESModule(modules + "AccountConfig.sys.mjs");
const { ConfigVerifier } = ChromeUtils.importESModule(modules + "ConfigVerifier.sys.mjs");
const { CreateInBackend } = ChromeUtils.importESModule(modules + "CreateInBackend.sys.mjs");

async function mainWindow() {
  for (let i = 0; i < 300; i++) {
    const win = Services.wm.getMostRecentWindow("mail:3pane");
    if (win && win.msgWindow) {
      return win;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("no main window");
}

// One line on stdout for the run, whatever the outcome.
async function fromAddress(email, realName) {
  try {
    const created = await setUp(email, realName);
    dump(`autoconfig-account: ${JSON.stringify(created)}\n`);
    return created;
  } catch (e) {
    dump(`autoconfig-account-error: ${e}\n`);
    throw e;
  }
}

async function setUp(email, realName) {
  const domain = email.split("@")[1];
  const win = await mainWindow();
  // The experiment's scope has no AbortSignal of its own; the main window's serves.
  const signal = win.AbortSignal.timeout(60000);
  const config = await FetchConfig.fromDB(domain, signal);
  const source = config.subSource;
  AccountConfig.replaceVariables(config, realName, email, "");
  const verified = await new ConfigVerifier(win.msgWindow, signal).verifyConfig(config, false);
  const account = await CreateInBackend.createAccountInBackend(verified);
  const incoming = account.incomingServer;
  incoming.getNewMessages(incoming.rootFolder, win.msgWindow, null);
  const outgoing = MailServices.outgoingServer
    .getServerByIdentity(account.defaultIdentity)
    .QueryInterface(Ci.nsISmtpServer);
  return {
    source,
    incoming: {
      type: incoming.type,
      hostname: incoming.hostname,
      port: incoming.port,
      socketType: incoming.socketType,
      authMethod: incoming.authMethod,
      username: incoming.username,
    },
    outgoing: {
      hostname: outgoing.hostname,
      port: outgoing.port,
      socketType: outgoing.socketType,
      authMethod: outgoing.authMethod,
      username: outgoing.username,
    },
    identity: account.defaultIdentity.email,
  };
}

this.accountSetup = class extends ExtensionCommon.ExtensionAPI {
  getAPI() {
    return { accountSetup: { fromAddress } };
  }
};
